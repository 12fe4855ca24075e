-- Cluster-status snapshots taken by the scheduler. A metric is NULL when its source
-- (NameNode JMX, ResourceManager REST, Flume metrics) could not be read.
CREATE TABLE IF NOT EXISTS cluster_status (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    taken_at                  BIGINT  NOT NULL,
    cluster                   TEXT    NOT NULL,
    namenode_state            TEXT    NULL,
    live_datanodes            INTEGER NULL,
    dead_datanodes            INTEGER NULL,
    stale_datanodes           INTEGER NULL,
    decommissioning_datanodes INTEGER NULL,
    capacity_total_bytes      BIGINT  NULL,
    capacity_used_bytes       BIGINT  NULL,
    capacity_remaining_bytes  BIGINT  NULL,
    under_replicated_blocks   BIGINT  NULL,
    missing_blocks            BIGINT  NULL,
    corrupt_blocks            BIGINT  NULL,
    safe_mode                 SMALLINT NULL,
    active_nodemanagers       INTEGER NULL,
    lost_nodemanagers         INTEGER NULL,
    unhealthy_nodemanagers    INTEGER NULL,
    apps_pending              INTEGER NULL,
    apps_failed               INTEGER NULL,
    flume_max_fill_percent    DOUBLE  NULL,
    health                    TEXT    NOT NULL,
    details                   TEXT    NOT NULL CHECK (json_valid(details))
);
CREATE INDEX IF NOT EXISTS idx_cluster_status_cluster_taken ON cluster_status (cluster, taken_at);
