//! The broker-to-broker Raft transport over real TCP on 127.0.0.1 (ephemeral ports): delivery of
//! many groups' messages intact, batching into few frames over one connection per peer,
//! reconnection to a restarted peer, refusal of malformed frames, and a `send` that never blocks.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use raft::prelude::{Entry, Message, MessageType};
use skiff_replication::transport::wire::{self, Envelope, GroupMessages};
use skiff_replication::transport::{GroupId, Incoming, SendError, Transport, TransportConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;

/// Upper bound of every wait in these tests.
/// Bound on every wait: generous, because CI shares two cores with builds.
const WAIT: Duration = Duration::from_secs(30);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(id: u64) -> (Transport, Receiver<Incoming>) {
    Transport::bind(TransportConfig::new(id, local())).await.unwrap()
}

/// A distinct append message of `group` (its entry data names group and sequence number).
fn append(from: u64, to: u64, group: u64, seq: u64) -> Message {
    Message {
        msg_type: MessageType::MsgAppend as i32,
        from,
        to,
        term: 3,
        log_term: 2,
        index: seq,
        commit: seq / 2,
        entries: vec![Entry {
            term: 3,
            index: seq + 1,
            data: format!("group {group} seq {seq}").into_bytes(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn heartbeat(from: u64, to: u64, commit: u64) -> Message {
    Message {
        msg_type: MessageType::MsgHeartbeat as i32,
        from,
        to,
        term: 3,
        commit,
        ..Default::default()
    }
}

/// Receives exactly `n` messages (panics after [`WAIT`]).
async fn recv_n(rx: &mut Receiver<Incoming>, n: usize) -> Vec<Incoming> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => panic!("incoming channel closed"),
            Err(_) => panic!("received {} of {n} messages in {WAIT:?}", got.len()),
        }
    }
    got
}

/// Waits until `check` holds (panics after [`WAIT`]).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Messages per (sender, group), in arrival order.
fn by_group(got: Vec<Incoming>) -> BTreeMap<(u64, GroupId), Vec<Message>> {
    let mut map: BTreeMap<(u64, GroupId), Vec<Message>> = BTreeMap::new();
    for m in got {
        map.entry((m.from, m.group)).or_default().push(m.message);
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_exchange_messages_of_many_groups_intact_and_in_group_order() {
    let (a, mut rx_a) = start(1).await;
    let (b, mut rx_b) = start(2).await;
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    let (groups, per_group) = (200u64, 5u64);
    let mut expect_at_b = BTreeMap::new();
    let mut expect_at_a = BTreeMap::new();
    for seq in 0..per_group {
        for g in 0..groups {
            let to_b = append(1, 2, g, seq);
            a.send(2, GroupId(g), &to_b).unwrap();
            expect_at_b.entry((1, GroupId(g))).or_insert_with(Vec::new).push(to_b);
            let to_a = append(2, 1, g, seq);
            b.send(1, GroupId(g), &to_a).unwrap();
            expect_at_a.entry((2, GroupId(g))).or_insert_with(Vec::new).push(to_a);
        }
    }
    let n = (groups * per_group) as usize;
    assert_eq!(by_group(recv_n(&mut rx_b, n).await), expect_at_b);
    assert_eq!(by_group(recv_n(&mut rx_a, n).await), expect_at_a);
    for t in [&a, &b] {
        // The writer counts a frame once its write returned, which may be after it arrived.
        eventually("sent counted", || t.stats().messages_sent == n as u64).await;
        let s = t.stats();
        assert_eq!(
            (s.messages_sent, s.messages_received, s.messages_dropped),
            (n as u64, n as u64, 0)
        );
        assert_eq!(
            (s.connects, s.connections_accepted),
            (1, 1),
            "one connection per direction"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_in_a_full_mesh_deliver_every_message_to_its_addressee() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(t, _)| t.local_addr()).collect();
    for (t, _) in &nodes {
        for (i, addr) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            if id != t.node_id() {
                t.add_peer(id, *addr);
            }
        }
    }
    let groups = 100u64;
    let mut expect: BTreeMap<u64, BTreeMap<(u64, GroupId), Vec<Message>>> = BTreeMap::new();
    for (t, _) in &nodes {
        let from = t.node_id();
        for to in (1..=3).filter(|&to| to != from) {
            for g in 0..groups {
                let m = append(from, to, g, from * 1000 + to);
                t.send(to, GroupId(g), &m).unwrap();
                expect
                    .entry(to)
                    .or_default()
                    .entry((from, GroupId(g)))
                    .or_default()
                    .push(m);
            }
        }
    }
    for (t, rx) in &mut nodes {
        let got = by_group(recv_n(rx, 2 * groups as usize).await);
        assert_eq!(got, expect[&t.node_id()], "at broker {}", t.node_id());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (t, rx) in &mut nodes {
        assert!(rx.try_recv().is_err(), "broker {} got more than was sent", t.node_id());
    }
}

/// Thousands of partitions per broker must not mean thousands of connections or frames: the
/// messages of 1000 groups queued before the writer runs go out in one frame on one connection,
/// and each group's repeated identical heartbeat is sent once.
#[tokio::test]
async fn a_thousand_groups_share_one_connection_and_few_frames() {
    let (a, _rx_a) = start(1).await;
    let (b, mut rx_b) = start(2).await;
    a.add_peer(2, b.local_addr());
    let groups = 1000u64;
    for g in 0..groups {
        a.send(2, GroupId(g), &append(1, 2, g, 7)).unwrap();
        // The heartbeats of an idle group on two ticks before the writer ran: coalesced.
        a.send(2, GroupId(g), &heartbeat(1, 2, 5)).unwrap();
        a.send(2, GroupId(g), &heartbeat(1, 2, 5)).unwrap();
    }
    let got = by_group(recv_n(&mut rx_b, 2 * groups as usize).await);
    for g in 0..groups {
        assert_eq!(got[&(1, GroupId(g))], vec![append(1, 2, g, 7), heartbeat(1, 2, 5)]);
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.heartbeats_coalesced, groups);
    assert_eq!(sa.messages_sent, 2 * groups);
    assert!(
        sa.frames_sent <= 3,
        "{} frames for {} messages",
        sa.frames_sent,
        sa.messages_sent
    );
    assert_eq!((sa.connects, sb.connections_accepted), (1, 1));
    assert_eq!(sb.frames_received, sa.frames_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reconnected_and_later_messages_arrive() {
    let (a, _rx_a) = start(1).await;
    let (b, mut rx_b) = start(2).await;
    let b_addr = b.local_addr();
    a.add_peer(2, b_addr);
    a.send(2, GroupId(1), &append(1, 2, 1, 0)).unwrap();
    assert_eq!(recv_n(&mut rx_b, 1).await[0].message, append(1, 2, 1, 0));

    b.shutdown().await;
    drop(rx_b);
    let start = Instant::now();
    let (b, mut rx_b) = loop {
        match Transport::bind(TransportConfig::new(2, b_addr)).await {
            Ok(t) => break t,
            Err(e) => {
                assert!(start.elapsed() < WAIT, "cannot rebind {b_addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Raft retransmits until it hears back; so does this loop (a message written to the dead
    // connection before the writer noticed the close may be lost).
    let mut seq = 1;
    let got = loop {
        a.send(2, GroupId(1), &append(1, 2, 1, seq)).unwrap();
        match tokio::time::timeout(Duration::from_millis(100), rx_b.recv()).await {
            Ok(Some(m)) => break m,
            _ => {
                assert!(start.elapsed() < WAIT, "nothing arrived after the restart");
                seq += 1;
            }
        }
    };
    assert_eq!(got.from, 1);
    assert!(got.message.index >= 1 && got.message.index <= seq);
    assert!(a.stats().connects >= 2);
    assert!(b.stats().connections_accepted >= 1);
}

/// A raw client that has introduced itself as a raft peer.
async fn connect_raw(addr: SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(&wire::PREAMBLE).await.unwrap();
    client
}

/// Reads from a raw client until the server closes the connection (panics after [`WAIT`]).
async fn assert_closed_by_server(client: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, client.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the server wrote to a raft connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_refused_and_the_listener_keeps_serving() {
    let (b, mut rx_b) = start(2).await;
    let addr = b.local_addr();

    // Not a raft peer: a Kafka client's ApiVersions request on the wrong port.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let api_versions = [0, 0, 0, 14, 0, 18, 0, 3, 0, 0, 0, 1, 0, 4, b'k', b'c', b'a', b't'];
    client.write_all(&api_versions).await.unwrap();
    assert_closed_by_server(&mut client).await;

    // A length-prefixed body that is not an envelope (a truncated varint).
    let mut client = connect_raw(addr).await;
    client
        .write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_closed_by_server(&mut client).await;

    // A length prefix beyond the frame limit: refused before the body is read or allocated.
    let mut client = connect_raw(addr).await;
    client.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_closed_by_server(&mut client).await;
    let mut client = connect_raw(addr).await;
    let too_big = (wire::MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    client.write_all(&too_big).await.unwrap();
    assert_closed_by_server(&mut client).await;

    // A good envelope carrying a garbage message, a message of an unknown type, one addressed to
    // another broker, and a good one: only the good one is delivered, the connection stays.
    let mut unknown = append(9, 2, 4, 0);
    unknown.msg_type = 1000;
    let envelope = Envelope {
        from_node: 9,
        batches: vec![GroupMessages {
            group: 4,
            messages: vec![
                vec![0xff; 3].into(),
                wire::encode_raft(&unknown),
                wire::encode_raft(&append(9, 3, 4, 0)),
                wire::encode_raft(&append(9, 2, 4, 1)),
            ],
        }],
    };
    let mut client = connect_raw(addr).await;
    client.write_all(&wire::encode_frame(&envelope).unwrap()).await.unwrap();
    let got = recv_n(&mut rx_b, 1).await.remove(0);
    assert_eq!(
        got,
        Incoming {
            from: 9,
            group: GroupId(4),
            message: append(9, 2, 4, 1)
        }
    );
    client.write_all(&wire::encode_frame(&envelope).unwrap()).await.unwrap();
    assert_eq!(recv_n(&mut rx_b, 1).await[0].message, append(9, 2, 4, 1));
    // Closing mid-frame is only a lost connection.
    client.write_all(&[0, 0, 1, 0, 1, 2]).await.unwrap();
    drop(client);

    // A real peer is still served.
    let (a, _rx_a) = start(1).await;
    a.add_peer(2, addr);
    a.send(2, GroupId(8), &append(1, 2, 8, 0)).unwrap();
    assert_eq!(recv_n(&mut rx_b, 1).await[0].message, append(1, 2, 8, 0));
    let s = b.stats();
    assert_eq!(s.frames_rejected, 4);
    assert_eq!(s.messages_rejected, 6);
    assert_eq!(s.messages_received, 3);
}

/// A peer that is down costs the sender nothing but counted drops: `send` returns at once, the
/// queue stays bounded, and nothing is kept for later.
#[tokio::test]
async fn sending_to_a_peer_that_is_down_never_blocks_and_counts_drops() {
    let dead = std::net::TcpListener::bind(local()).unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut config = TransportConfig::new(1, local());
    config.peer_queue_capacity = 16;
    let (a, _rx) = Transport::bind(config).await.unwrap();
    a.add_peer(2, dead_addr);

    let total = 10_000u64;
    let start = Instant::now();
    let mut full = 0u64;
    for seq in 0..total {
        match a.send(2, GroupId(seq % 100), &append(1, 2, seq % 100, seq)) {
            Ok(()) => {}
            Err(SendError::QueueFull(2)) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "send blocked: {:?}",
        start.elapsed()
    );
    // On this single-threaded runtime the writer has not run yet: only the queue's worth fit.
    assert_eq!(full, total - 16);
    assert_eq!(
        a.send(7, GroupId(0), &append(1, 7, 0, 0)),
        Err(SendError::UnknownPeer(7))
    );
    eventually("every message counted as dropped", || {
        a.stats().messages_dropped == total + 1
    })
    .await;
    let s = a.stats();
    assert_eq!((s.messages_sent, s.frames_sent, s.connects), (0, 0, 0));
    assert!(s.connect_failures >= 1);

    assert!(a.remove_peer(2));
    assert_eq!(
        a.send(2, GroupId(0), &append(1, 2, 0, 0)),
        Err(SendError::UnknownPeer(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_moves_is_reached_at_its_new_address() {
    let (a, _rx_a) = start(1).await;
    let (old, mut rx_old) = start(2).await;
    a.add_peer(2, old.local_addr());
    a.send(2, GroupId(3), &append(1, 2, 3, 0)).unwrap();
    assert_eq!(recv_n(&mut rx_old, 1).await[0].message, append(1, 2, 3, 0));
    let (new, mut rx_new) = start(2).await;
    a.add_peer(2, new.local_addr());
    a.send(2, GroupId(3), &append(1, 2, 3, 1)).unwrap();
    assert_eq!(recv_n(&mut rx_new, 1).await[0].message, append(1, 2, 3, 1));
    assert!(rx_old.try_recv().is_err());
}

/// A peer that accepts but never reads: once the socket buffers are full the writer is stuck in
/// its write, yet `send` keeps returning at once and the queue stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_never_blocks_send() {
    let stuck = tokio::net::TcpListener::bind(local()).await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let (conn, _) = stuck.accept().await.unwrap();
        tokio::time::sleep(WAIT).await;
        drop(conn);
    });
    let mut config = TransportConfig::new(1, local());
    config.peer_queue_capacity = 64;
    let (a, _rx) = Transport::bind(config).await.unwrap();
    a.add_peer(2, stuck_addr);
    let mut big = append(1, 2, 0, 0);
    big.entries[0].data = vec![7u8; 64 * 1024];
    let total = 2_000u64;
    let start = Instant::now();
    let mut full = 0u64;
    for seq in 0..total {
        if a.send(2, GroupId(seq % 10), &big).is_err() {
            full += 1;
        }
        if seq % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // 128 MiB offered to a socket nobody reads: most of it must have been dropped, not buffered.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "send blocked: {:?}",
        start.elapsed()
    );
    assert!(full > total / 2, "only {full} of {total} dropped");
    assert!(a.stats().messages_dropped >= full);
    accepting.abort();
}
