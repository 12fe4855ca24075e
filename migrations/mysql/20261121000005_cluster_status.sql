-- Cluster-status snapshots taken by the scheduler. A metric is NULL when its source
-- (NameNode JMX, ResourceManager REST, Flume metrics) could not be read.
CREATE TABLE IF NOT EXISTS cluster_status (
    id                        BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    taken_at                  BIGINT      NOT NULL,
    cluster                   VARCHAR(64) NOT NULL,
    namenode_state            VARCHAR(32) NULL,
    live_datanodes            INT         NULL,
    dead_datanodes            INT         NULL,
    stale_datanodes           INT         NULL,
    decommissioning_datanodes INT         NULL,
    capacity_total_bytes      BIGINT      NULL,
    capacity_used_bytes       BIGINT      NULL,
    capacity_remaining_bytes  BIGINT      NULL,
    under_replicated_blocks   BIGINT      NULL,
    missing_blocks            BIGINT      NULL,
    corrupt_blocks            BIGINT      NULL,
    safe_mode                 SMALLINT    NULL,
    active_nodemanagers       INT         NULL,
    lost_nodemanagers         INT         NULL,
    unhealthy_nodemanagers    INT         NULL,
    apps_pending              INT         NULL,
    apps_failed               INT         NULL,
    flume_max_fill_percent    DOUBLE      NULL,
    health                    VARCHAR(16) NOT NULL,
    details                   LONGTEXT    NOT NULL,
    KEY idx_cluster_status_cluster_taken (cluster, taken_at),
    CONSTRAINT chk_cluster_status_details CHECK (json_valid(details))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
