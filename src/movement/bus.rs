//! Wakes subscription streams when movements are committed: at once for commits of
//! this hub, through PostgreSQL LISTEN/NOTIFY for commits of other replicas. A wake-up
//! is only a hint: subscribers read the database, and poll it anyway, so a lost
//! notification delays a movement by one poll interval and loses nothing.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::sync::watch;

/// The NOTIFY channel a publishing transaction signals on commit.
pub const CHANNEL: &str = "ghthub_movements";

#[derive(Clone)]
pub struct Bus {
    tx: Arc<watch::Sender<u64>>,
}

impl Bus {
    /// A bus; with a PostgreSQL URL, also listens for other replicas' commits (the
    /// listener stops when the bus is dropped).
    pub fn new(postgres_url: Option<&str>) -> Bus {
        let (tx, _) = watch::channel(0u64);
        let tx = Arc::new(tx);
        if let Some(url) = postgres_url {
            spawn_listener(Arc::downgrade(&tx), url.to_string());
        }
        Bus { tx }
    }

    /// Signals that movements were committed.
    pub fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

fn spawn_listener(bus: Weak<watch::Sender<u64>>, url: String) {
    tokio::spawn(async move {
        while bus.strong_count() > 0 {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN {CHANNEL} failed; subscribers poll");
                    } else {
                        loop {
                            match tokio::time::timeout(Duration::from_secs(5), listener.recv()).await {
                                Ok(Ok(_)) => match bus.upgrade() {
                                    Some(tx) => tx.send_modify(|v| *v = v.wrapping_add(1)),
                                    None => return,
                                },
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "movement notifications lost; reconnecting");
                                    break;
                                }
                                Err(_) if bus.strong_count() == 0 => return,
                                Err(_) => {}
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for movement notifications; subscribers poll"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
