//! The TCP front end. Each connection is served by one task. Like a Kafka broker, it handles one
//! request at a time and answers in request order, so a slow or stuck client only ever stalls its
//! own connection. One exception, because acks=all waits for an fsync here: Produce requests may
//! overlap (up to `MAX_IN_FLIGHT`, librdkafka's and Java's default in-flight limit). Each one
//! appends when it starts, in order, and they then wait for their commits together, so queued
//! requests share a group-commit fsync instead of paying one each.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use skiff_protocol::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::broker::Broker;
use crate::dispatch::{self, Outcome};

/// Produce requests a connection may have waiting for their commit at once.
const MAX_IN_FLIGHT: usize = 5;
/// Initial read buffer of a connection; it grows to the largest frame seen.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts clients on one listener; `name` is its listener name (see `listener.rs`).
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, name: Arc<str>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = Arc::clone(&broker);
                    let span = tracing::debug_span!("connection", %peer);
                    tokio::spawn(connection(broker, stream, peer, Arc::clone(&name)).instrument(span));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn connection(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr, listener: Arc<str>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let decoder = FrameDecoder::new(broker.config.socket_request_max_bytes);
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let idle = std::time::Duration::from_millis(broker.config.connections_max_idle_ms);
    // Requests started and not yet answered, oldest first; answers leave in this order.
    let mut in_flight = FuturesOrdered::new();
    // Whether everything in flight is a Produce, so that another Produce may join it.
    let mut only_produce = true;
    // A frame read but not started, waiting for earlier requests to finish.
    let mut waiting: Option<Bytes> = None;
    loop {
        if waiting.is_none() {
            match decoder.decode(&mut buf) {
                Ok(frame) => waiting = frame,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    return;
                }
            }
        }
        if let Some(frame) = waiting.take() {
            let produce = dispatch::is_produce(&frame);
            let may_start = in_flight.is_empty() || (produce && only_produce && in_flight.len() < MAX_IN_FLIGHT);
            if may_start {
                only_produce = produce && (in_flight.is_empty() || only_produce);
                in_flight.push_back(dispatch::start(&broker, frame, peer, Arc::clone(&listener)));
                continue;
            }
            waiting = Some(frame);
        }
        let can_read = waiting.is_none() && in_flight.len() < MAX_IN_FLIGHT;
        tokio::select! {
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                if in_flight.is_empty() {
                    only_produce = true;
                }
                match outcome {
                    Outcome::Respond(response) => {
                        if let Err(e) = stream.write_all(&response).await {
                            tracing::debug!(error = %e, "write failed; closing");
                            return;
                        }
                    }
                    Outcome::Silent => {}
                    Outcome::Close(reason) => {
                        tracing::warn!(%peer, %reason, "closing the connection");
                        return;
                    }
                }
            }
            read = tokio::time::timeout(idle, stream.read_buf(&mut buf)), if can_read => match read {
                Ok(Ok(0)) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read failed; closing");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "idle for connections.max.idle.ms; closing");
                    return;
                }
            },
        }
    }
}
