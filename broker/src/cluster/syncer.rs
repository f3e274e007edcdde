//! The Raft loop's fsync thread. The middle of every pass ([`ReadyPass::sync`]) runs here, so the
//! loop goes on stepping messages and taking proposals while the disk works, and produce requests
//! never queue behind an fsync on the driver's lock. Passes begun while a round is under way are
//! merged and share the next round (group commit across time as well as across partitions);
//! synced passes go back to the loop in the order they came.

use skiff_replication::group_driver::ReadyPass;
use tokio::sync::mpsc;

use crate::clock::now_ms;

pub(super) struct Syncer {
    tx: std::sync::mpsc::Sender<ReadyPass>,
}

impl Syncer {
    /// Starts the thread; synced passes arrive on the returned receiver, which closes if the
    /// thread dies.
    pub(super) fn start() -> std::io::Result<(Syncer, mpsc::UnboundedReceiver<ReadyPass>)> {
        let (tx, rx) = std::sync::mpsc::channel::<ReadyPass>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("raft-fsync".into()).spawn(move || {
            while let Ok(mut pass) = rx.recv() {
                while let Ok(later) = rx.try_recv() {
                    pass.absorb(later);
                }
                pass.sync(now_ms());
                if done_tx.send(pass).is_err() {
                    return;
                }
            }
        })?;
        Ok((Syncer { tx }, done_rx))
    }

    /// Queues a pass for the next round; false if the thread is gone.
    pub(super) fn submit(&self, pass: ReadyPass) -> bool {
        self.tx.send(pass).is_ok()
    }
}
