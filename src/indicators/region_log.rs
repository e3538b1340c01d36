//! The hub's in-memory copy of each pulled region's values, the read model of
//! `PullRegion`.
//!
//! A region log holds the latest state of every value revision of a region, ordered
//! by change position, and the position it is exact up to. Before serving a pull it
//! catches up from the database with the same query an incremental client pull uses
//! (`store::pull` after its position). Positions are committed in increasing order
//! (see `store`), so once the log has read position N it has every change up to N:
//! the log is always an exact prefix of the database, whatever other writers or
//! replicas do, and needs no invalidation.
//!
//! Why: reading a row through sqlx costs a cross-thread hand-off per row; a full pull
//! of a large region spent most of its time there. With the log, a pull reads only the
//! changes since the previous pull of the region (by anyone), then streams from memory.
//! Memory: the region's value revisions (a few hundred bytes each), for the regions
//! pulled since the hub started.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use futures::StreamExt;

use super::{
    store::{self, PullFilter},
    values::Status,
};
use crate::{db::Db, proto, AppResult};

#[derive(Default)]
struct RegionLog {
    /// Every change up to this position is in the log.
    position: i64,
    /// Latest state of each revision, by its change position.
    by_position: BTreeMap<i64, Arc<proto::IndicatorValue>>,
    /// Change position of each revision id in `by_position`.
    position_of: HashMap<String, i64>,
}

impl RegionLog {
    fn apply(&mut self, v: proto::IndicatorValue) {
        if let Some(old) = self.position_of.insert(v.id.clone(), v.change_seq) {
            self.by_position.remove(&old);
        }
        self.position = self.position.max(v.change_seq);
        self.by_position.insert(v.change_seq, Arc::new(v));
    }
}

/// The logs of the regions pulled so far.
#[derive(Default)]
pub struct RegionLogs {
    regions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RegionLog>>>>,
}

fn matches(v: &proto::IndicatorValue, f: &PullFilter) -> bool {
    (f.period.is_empty() || v.period == f.period)
        && (f.domain == 0 || i64::from(v.domain) == f.domain)
        && (f.catalogue.is_empty() || v.catalogue == f.catalogue)
        && (f.status.is_empty()
            || proto::ValueStatus::try_from(v.status).ok().and_then(Status::from_proto).map(Status::as_str)
                == Some(f.status.as_str()))
}

impl RegionLogs {
    /// The values of `f.region` changed after `f.since` that match the filter, in
    /// change order, as of now.
    pub async fn changes(&self, db: &Db, f: &PullFilter) -> AppResult<Vec<Arc<proto::IndicatorValue>>> {
        let log = {
            let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
            regions.entry(f.region.clone()).or_default().clone()
        };
        // One catch-up at a time per region; pulls of other regions are not held up.
        let mut log = log.lock().await;
        let mut rows = std::pin::pin!(store::changes_since(db, &f.region, log.position));
        while let Some(v) = rows.next().await {
            log.apply(v?);
        }
        Ok(log
            .by_position
            .range(f.since.saturating_add(1)..)
            .map(|(_, v)| v)
            .filter(|v| matches(v, f))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(id: &str, seq: i64, status: proto::ValueStatus, period: &str, domain: u32) -> proto::IndicatorValue {
        proto::IndicatorValue {
            id: id.into(),
            change_seq: seq,
            status: status as i32,
            period: period.into(),
            domain,
            catalogue: "ght-convergence".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_state_replaces_the_old_one() {
        let mut log = RegionLog::default();
        log.apply(value("a", 1, proto::ValueStatus::Draft, "2025", 1));
        log.apply(value("b", 2, proto::ValueStatus::Draft, "2025", 2));
        log.apply(value("a", 3, proto::ValueStatus::Submitted, "2025", 1));
        assert_eq!(log.position, 3);
        let order: Vec<(&str, i64)> = log.by_position.values().map(|v| (v.id.as_str(), v.change_seq)).collect();
        assert_eq!(order, vec![("b", 2), ("a", 3)]);
    }

    #[test]
    fn filters() {
        let v = value("a", 1, proto::ValueStatus::Submitted, "2025-S1", 3);
        let f = |period: &str, domain: i64, status: &str, catalogue: &str| PullFilter {
            region: "44".into(),
            since: 0,
            period: period.into(),
            domain,
            status: status.into(),
            catalogue: catalogue.into(),
        };
        assert!(matches(&v, &f("", 0, "", "")));
        assert!(matches(&v, &f("2025-S1", 3, "SUBMITTED", "ght-convergence")));
        assert!(!matches(&v, &f("2025", 0, "", "")));
        assert!(!matches(&v, &f("", 2, "", "")));
        assert!(!matches(&v, &f("", 0, "VALIDATED", "")));
        assert!(!matches(&v, &f("", 0, "", "hn-prerequisites")));
    }
}
