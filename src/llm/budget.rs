//! The hourly LLM budget: requests and tokens over a rolling hour. Pure (time is passed in).
//!
//! A call reserves its estimated tokens before it is sent (so concurrent calls cannot overrun
//! the budget together) and settles with the real usage the server reports.

use std::collections::VecDeque;

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct Budget {
    requests_per_hour: u32,
    tokens_per_hour: u64,
    /// (time, tokens) of the requests of the last hour, oldest first.
    spent: VecDeque<(i64, u64)>,
}

/// A reservation to settle once the call has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    at_ms: i64,
    tokens: u64,
}

/// Why a call may not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// When the oldest spending leaves the window (epoch ms).
    pub retry_at_ms: i64,
    /// `requests` or `tokens`.
    pub what: &'static str,
}

impl Budget {
    pub fn new(requests_per_hour: u32, tokens_per_hour: u64) -> Budget {
        Budget {
            requests_per_hour,
            tokens_per_hour,
            spent: VecDeque::new(),
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while self
            .spent
            .front()
            .is_some_and(|(t, _)| *t <= now_ms - HOUR_MS)
        {
            self.spent.pop_front();
        }
    }

    fn tokens_spent(&self) -> u64 {
        self.spent.iter().map(|(_, n)| *n).sum()
    }

    /// Reserve one request of `estimate` tokens, or say when to try again.
    pub fn reserve(&mut self, now_ms: i64, estimate: u64) -> Result<Reservation, Exhausted> {
        self.expire(now_ms);
        let retry_at_ms = self
            .spent
            .front()
            .map_or(now_ms + HOUR_MS, |(t, _)| t + HOUR_MS);
        if self.spent.len() as u64 >= u64::from(self.requests_per_hour) {
            return Err(Exhausted {
                retry_at_ms,
                what: "requests",
            });
        }
        if self.tokens_spent().saturating_add(estimate) > self.tokens_per_hour {
            return Err(Exhausted {
                retry_at_ms,
                what: "tokens",
            });
        }
        self.spent.push_back((now_ms, estimate));
        Ok(Reservation {
            at_ms: now_ms,
            tokens: estimate,
        })
    }

    /// Replace a reservation's estimate with the tokens really used (a failed call that the
    /// server never answered still counts as a request).
    pub fn settle(&mut self, r: Reservation, used_tokens: u64) {
        if let Some(slot) = self
            .spent
            .iter_mut()
            .find(|(t, n)| *t == r.at_ms && *n == r.tokens)
        {
            slot.1 = used_tokens;
        }
    }

    /// Count a request made earlier (restoring the window after a restart).
    pub fn record(&mut self, at_ms: i64, tokens: u64) {
        self.spent.push_back((at_ms, tokens));
        self.spent.make_contiguous().sort_by_key(|(t, _)| *t);
    }

    /// (requests, tokens) left in the current window.
    pub fn remaining(&mut self, now_ms: i64) -> (u64, u64) {
        self.expire(now_ms);
        (
            u64::from(self.requests_per_hour).saturating_sub(self.spent.len() as u64),
            self.tokens_per_hour.saturating_sub(self.tokens_spent()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_tokens_are_limited_per_rolling_hour() {
        let mut b = Budget::new(2, 1000);
        let r1 = b.reserve(0, 400).unwrap();
        b.settle(r1, 100);
        assert_eq!(b.remaining(1), (1, 900));
        let e = b.reserve(10, 901).unwrap_err();
        assert_eq!(e.what, "tokens");
        b.reserve(20, 800).unwrap();
        let e = b.reserve(30, 1).unwrap_err();
        assert_eq!((e.what, e.retry_at_ms), ("requests", HOUR_MS));
        // The first request leaves the window after an hour.
        assert!(b.reserve(HOUR_MS, 50).is_ok());
    }
}
