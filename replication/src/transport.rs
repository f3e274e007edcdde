//! The broker-to-broker transport of Raft messages (issue 4). A broker hosts thousands of Raft
//! groups, but shares them with only a few peer brokers, so everything is per *peer*, never per
//! group: one outgoing TCP connection per peer, one bounded queue per peer, one writer task per
//! peer, and one listener for all incoming connections. Frames are laid out in [`wire`].
//!
//! - **Sending** ([`Transport::send`]) encodes the message and enqueues it without waiting. A
//!   full queue drops the message and counts the drop: Raft tolerates loss and retransmits, while
//!   blocking the driver or buffering without bound would not be tolerable.
//! - **Batching**: a peer's writer takes everything queued at the moment it wakes and writes it
//!   as one frame (split only at [`wire::MAX_FRAME_BYTES`]), whatever groups it belongs to.
//! - **Heartbeat coalescing**: the heartbeats all idle groups send a peer on one tick end up in
//!   the same flush and thus in one frame and one write; inside a frame a heartbeat identical to
//!   the same group's previous message is sent once ([`wire::EnvelopeBuilder`]). One ticker for
//!   all groups (so that their heartbeats are due together) is the driver's business.
//! - **Connections** are made lazily on the first message, and again after a failure, with a
//!   bounded exponential backoff; messages queued while the peer is unreachable are dropped
//!   (and counted) rather than delivered late. Connections are one-way: the sender never reads,
//!   except to notice that the peer closed an idle connection.
//! - **Receiving**: every accepted connection's frames are decoded and each Raft message is
//!   handed to one bounded `mpsc` channel as an [`Incoming`]; a slow driver back-pressures the
//!   sending peers over TCP (their queues then drop). A malformed or oversized frame closes its
//!   connection (the stream can no longer be trusted to be in sync); the listener keeps serving.

pub mod wire;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use raft::prelude::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

pub use wire::GroupId;
use wire::{EnvelopeBuilder, Pushed, WireError};

/// Messages that may wait for one peer's writer; beyond that they are dropped.
pub const PEER_QUEUE_CAPACITY_DEFAULT: usize = 4096;
/// Received messages that may wait for the driver before the connections stop reading.
pub const INCOMING_CAPACITY_DEFAULT: usize = 16 * 1024;
/// First wait after a failed connection attempt; doubled on every further failure.
pub const RECONNECT_BACKOFF_MIN_DEFAULT: Duration = Duration::from_millis(10);
/// Longest wait between connection attempts.
pub const RECONNECT_BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(1);
/// A connection attempt that takes longer than this counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A frame write that takes longer than this (a peer that stopped reading) drops the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// An incoming connection that has not sent its preamble by then is closed.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// What a frame's body buffer starts at, whatever its length prefix claims.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Incoming connections served at once; more are closed at once (brokers need one per peer).
const MAX_INCOMING_CONNECTIONS: usize = 1024;

/// How a [`Transport`] listens and how much it buffers.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This broker's id, stamped on every outgoing envelope.
    pub node_id: u64,
    /// Address to listen on (port 0 picks one; see [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Messages queued per peer before further ones are dropped.
    pub peer_queue_capacity: usize,
    /// Received messages waiting for the driver before connections stop reading.
    pub incoming_capacity: usize,
    /// First wait after a failed connection attempt.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub backoff_max: Duration,
}

impl TransportConfig {
    pub fn new(node_id: u64, listen: SocketAddr) -> Self {
        Self {
            node_id,
            listen,
            peer_queue_capacity: PEER_QUEUE_CAPACITY_DEFAULT,
            incoming_capacity: INCOMING_CAPACITY_DEFAULT,
            backoff_min: RECONNECT_BACKOFF_MIN_DEFAULT,
            backoff_max: RECONNECT_BACKOFF_MAX_DEFAULT,
        }
    }
}

/// A Raft message received from a peer broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// Broker id of the sender (from its envelope).
    pub from: u64,
    pub group: GroupId,
    pub message: Message,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the raft transport must be started on a tokio runtime")]
    NoRuntime,
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Why [`Transport::send`] did not queue a message (it is dropped either way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no address known for broker {0}")]
    UnknownPeer(u64),
    #[error("queue to broker {0} is full")]
    QueueFull(u64),
    #[error("the writer to broker {0} has stopped")]
    Closed(u64),
}

/// Counters of a transport since it started (see [`Transport::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages written to a peer's socket.
    pub messages_sent: u64,
    /// Frames written (each one envelope of possibly many groups' messages).
    pub frames_sent: u64,
    /// Messages dropped: queue full, peer unreachable, write failed, or too large.
    pub messages_dropped: u64,
    /// Heartbeats not sent because an identical one of the same group was in the same frame.
    pub heartbeats_coalesced: u64,
    /// Outgoing connections established.
    pub connects: u64,
    /// Outgoing connection attempts that failed.
    pub connect_failures: u64,
    /// Incoming connections accepted.
    pub connections_accepted: u64,
    /// Well-formed frames received.
    pub frames_received: u64,
    /// Messages received and handed (or being handed) to the incoming channel.
    pub messages_received: u64,
    /// Oversized or undecodable frames and wrong preambles (each closes its connection).
    pub frames_rejected: u64,
    /// Undecodable, unknown or misaddressed messages inside good frames (skipped).
    pub messages_rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    messages_sent: AtomicU64,
    frames_sent: AtomicU64,
    messages_dropped: AtomicU64,
    heartbeats_coalesced: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    connections_accepted: AtomicU64,
    frames_received: AtomicU64,
    messages_received: AtomicU64,
    frames_rejected: AtomicU64,
    messages_rejected: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            messages_sent: get(&self.messages_sent),
            frames_sent: get(&self.frames_sent),
            messages_dropped: get(&self.messages_dropped),
            heartbeats_coalesced: get(&self.heartbeats_coalesced),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            connections_accepted: get(&self.connections_accepted),
            frames_received: get(&self.frames_received),
            messages_received: get(&self.messages_received),
            frames_rejected: get(&self.frames_rejected),
            messages_rejected: get(&self.messages_rejected),
        }
    }
}

/// One message waiting in a peer's queue, already encoded by the sender.
#[derive(Debug)]
struct Outgoing {
    group: GroupId,
    bytes: Bytes,
    heartbeat: bool,
}

#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    queue: mpsc::Sender<Outgoing>,
}

/// The Raft transport of one broker: see the module documentation.
#[derive(Debug)]
pub struct Transport {
    config: TransportConfig,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<u64, Peer>>,
    counters: Arc<Counters>,
    /// The listener and every writer; dropping the transport aborts them all.
    tasks: Mutex<JoinSet<()>>,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Transport {
    /// Starts listening; returns the transport and the channel of received messages.
    /// Must run on a tokio runtime: the transport's tasks are spawned on it.
    pub async fn bind(config: TransportConfig) -> Result<(Self, mpsc::Receiver<Incoming>), TransportError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.incoming_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let mut tasks = JoinSet::new();
        tasks.spawn_on(run_listener(listener, config.node_id, tx, counters.clone()), &runtime);
        tracing::debug!(node = config.node_id, %local_addr, "raft transport listening");
        let transport = Self {
            config,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            counters,
            tasks: Mutex::new(tasks),
            runtime,
        };
        Ok((transport, rx))
    }

    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Tells where broker `id` listens. A changed address replaces the peer's queue and writer
    /// (what was queued for the old address is still sent there).
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        let mut peers = lock(&self.peers);
        if peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        let (queue, rx) = mpsc::channel(self.config.peer_queue_capacity.max(1));
        let writer = Writer {
            node_id: self.config.node_id,
            peer: id,
            addr,
            queue: rx,
            counters: self.counters.clone(),
            backoff_min: self.config.backoff_min,
            backoff_max: self.config.backoff_max.max(self.config.backoff_min),
        };
        let span = tracing::debug_span!("raft_peer", node = self.config.node_id, peer = id, %addr);
        lock(&self.tasks).spawn_on(writer.run().instrument(span), &self.runtime);
        peers.insert(id, Peer { addr, queue });
    }

    /// Forgets broker `id` (decommissioned): its writer sends what is queued and stops.
    pub fn remove_peer(&self, id: u64) -> bool {
        lock(&self.peers).remove(&id).is_some()
    }

    /// Queues one Raft message of `group` for broker `peer` (the message's `to`); never waits. A message that cannot
    /// be queued is dropped and counted; the error says why.
    pub fn send(&self, peer: u64, group: GroupId, message: &Message) -> Result<(), SendError> {
        let outgoing = Outgoing {
            group,
            bytes: wire::encode_raft(message),
            heartbeat: message.msg_type == MessageType::MsgHeartbeat as i32,
        };
        let result = match lock(&self.peers).get(&peer) {
            None => Err(SendError::UnknownPeer(peer)),
            Some(p) => p.queue.try_send(outgoing).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::QueueFull(peer),
                mpsc::error::TrySendError::Closed(_) => SendError::Closed(peer),
            }),
        };
        if result.is_err() {
            add(&self.counters.messages_dropped, 1);
        }
        result
    }

    pub fn stats(&self) -> TransportStats {
        self.counters.snapshot()
    }

    /// Stops the listener, every connection and every writer, and waits until they are gone
    /// (so that the listening port is free again). Dropping the transport stops them too, but
    /// without waiting.
    pub async fn shutdown(self) {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        tasks.shutdown().await;
    }
}

/// The task that owns the connection to one peer and drains its queue.
struct Writer {
    node_id: u64,
    peer: u64,
    addr: SocketAddr,
    queue: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Writer {
    async fn run(mut self) {
        let mut conn: Option<TcpStream> = None;
        let mut backoff = self.backoff_min;
        let mut builder = EnvelopeBuilder::new(self.node_id);
        // A message that did not fit in the previous frame.
        let mut carried: Option<Outgoing> = None;
        loop {
            let first = match carried.take() {
                Some(o) => o,
                None => match self.next(&mut conn).await {
                    Some(o) => o,
                    None => return,
                },
            };
            let Some(stream) = conn.as_mut() else {
                match connect(self.addr).await {
                    Ok(stream) => {
                        add(&self.counters.connects, 1);
                        tracing::debug!(peer = self.peer, addr = %self.addr, "connected");
                        backoff = self.backoff_min;
                        conn = Some(stream);
                        carried = Some(first);
                    }
                    Err(e) => {
                        add(&self.counters.connect_failures, 1);
                        // Stale by the time the peer is back: Raft will send afresh.
                        let mut dropped = 1;
                        while self.queue.try_recv().is_ok() {
                            dropped += 1;
                        }
                        add(&self.counters.messages_dropped, dropped);
                        tracing::debug!(peer = self.peer, addr = %self.addr, error = %e, dropped, ?backoff, "cannot connect");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.backoff_max);
                    }
                }
                continue;
            };
            carried = self.fill(&mut builder, first);
            while carried.is_none() {
                match self.queue.try_recv() {
                    Ok(o) => carried = self.fill(&mut builder, o),
                    Err(_) => break,
                }
            }
            let count = builder.len() as u64;
            if count == 0 {
                continue;
            }
            let written = match wire::encode_frame(&builder.take()) {
                Ok(frame) => tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                    .map_err(TransportError::from),
                Err(e) => Err(e.into()),
            };
            match written {
                Ok(()) => {
                    add(&self.counters.frames_sent, 1);
                    add(&self.counters.messages_sent, count);
                }
                Err(e) => {
                    add(&self.counters.messages_dropped, count);
                    tracing::debug!(peer = self.peer, error = %e, dropped = count, "write failed, reconnecting");
                    conn = None;
                }
            }
        }
    }

    /// Waits for the next queued message (`None`: the transport is gone). Meanwhile watches an
    /// idle connection: the peer never writes, so readable means closed (or broken) — forget it
    /// now rather than lose the next frame to it.
    async fn next(&mut self, conn: &mut Option<TcpStream>) -> Option<Outgoing> {
        let Some(stream) = conn.as_mut() else {
            return self.queue.recv().await;
        };
        let mut probe = [0u8; 64];
        tokio::select! {
            item = self.queue.recv() => item,
            _ = stream.read(&mut probe) => {
                tracing::debug!(peer = self.peer, "connection closed by peer");
                *conn = None;
                self.queue.recv().await
            }
        }
    }

    /// Adds a message to the frame being built; returns it if the frame is full.
    fn fill(&self, builder: &mut EnvelopeBuilder, o: Outgoing) -> Option<Outgoing> {
        match builder.push(o.group, o.bytes.clone(), o.heartbeat) {
            Pushed::Added => None,
            Pushed::Coalesced => {
                add(&self.counters.heartbeats_coalesced, 1);
                None
            }
            Pushed::Full => Some(o),
            Pushed::TooLarge => {
                add(&self.counters.messages_dropped, 1);
                tracing::warn!(peer = self.peer, group = %o.group, bytes = o.bytes.len(), "raft message larger than a frame dropped");
                None
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    let mut stream = stream;
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&wire::PREAMBLE))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(stream)
}

async fn run_listener(listener: TcpListener, node_id: u64, tx: mpsc::Sender<Incoming>, counters: Arc<Counters>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    if connections.len() >= MAX_INCOMING_CONNECTIONS {
                        tracing::warn!(%addr, "too many raft connections, closing");
                        continue;
                    }
                    add(&counters.connections_accepted, 1);
                    let span = tracing::debug_span!("raft_connection", node = node_id, %addr);
                    connections.spawn(run_connection(stream, addr, node_id, tx.clone(), counters.clone()).instrument(span));
                }
                Err(e) => {
                    // E.g. out of file descriptors: do not spin.
                    tracing::warn!(error = %e, "accepting a raft connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one frame's body; `None` when the peer closed the connection between frames.
async fn read_frame(reader: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>, TransportError> {
    let len = match reader.read_u32().await {
        Ok(len) => len,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = wire::check_frame_len(len)?;
    // Grows with the bytes that actually arrive: a prefix alone cannot make us allocate.
    let mut body = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
    reader.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(body))
}

async fn run_connection(
    stream: TcpStream,
    addr: SocketAddr,
    node_id: u64,
    tx: mpsc::Sender<Incoming>,
    counters: Arc<Counters>,
) {
    let mut reader = BufReader::new(stream);
    let mut preamble = [0u8; 8];
    let greeted = tokio::time::timeout(PREAMBLE_TIMEOUT, reader.read_exact(&mut preamble)).await;
    match greeted.map(|read| read.map(|_| wire::check_preamble(preamble))) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            add(&counters.frames_rejected, 1);
            tracing::warn!(%addr, error = %e, "not a raft peer, closing the connection");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "raft connection lost before its preamble");
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, "no preamble in {PREAMBLE_TIMEOUT:?}, closing the connection");
            return;
        }
    }
    loop {
        let envelope = match read_frame(&mut reader).await.and_then(|body| match body {
            Some(body) => Ok(Some(wire::decode_envelope(&body)?)),
            None => Ok(None),
        }) {
            Ok(Some(envelope)) => envelope,
            Ok(None) => return,
            Err(TransportError::Io(e)) => {
                tracing::debug!(%addr, error = %e, "raft connection lost");
                return;
            }
            Err(e) => {
                add(&counters.frames_rejected, 1);
                tracing::warn!(%addr, error = %e, "bad raft frame, closing the connection");
                return;
            }
        };
        add(&counters.frames_received, 1);
        for batch in envelope.batches {
            let group = GroupId(batch.group);
            for bytes in batch.messages {
                let message = match wire::decode_raft(&bytes) {
                    Ok(m) if m.to == node_id => m,
                    Ok(m) => {
                        add(&counters.messages_rejected, 1);
                        tracing::warn!(%addr, %group, to = m.to, "raft message for another broker");
                        continue;
                    }
                    Err(e) => {
                        add(&counters.messages_rejected, 1);
                        tracing::warn!(%addr, %group, error = %e, "bad raft message skipped");
                        continue;
                    }
                };
                let incoming = Incoming {
                    from: envelope.from_node,
                    group,
                    message,
                };
                add(&counters.messages_received, 1);
                if tx.send(incoming).await.is_err() {
                    return; // the driver is gone
                }
            }
        }
    }
}
