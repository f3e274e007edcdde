//! The TCP front end. Each connection is served by one task that reads a whole frame, handles it,
//! and writes the response before reading the next, exactly as a Kafka broker mutes a channel
//! while a request is in flight: responses leave in request order and a slow or stuck client only
//! ever stalls its own connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use skiff_protocol::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::broker::Broker;
use crate::dispatch::{self, Outcome};

/// Initial read buffer of a connection; it grows to the largest frame seen.
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = Arc::clone(&broker);
                    let span = tracing::debug_span!("connection", %peer);
                    tokio::spawn(connection(broker, stream, peer).instrument(span));
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

async fn connection(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let decoder = FrameDecoder::new(broker.config.socket_request_max_bytes);
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let idle = std::time::Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match tokio::time::timeout(idle, stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) => return,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read failed; closing");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "idle for connections.max.idle.ms; closing");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                return;
            }
        };
        match dispatch::handle(&broker, frame, peer).await {
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
}
