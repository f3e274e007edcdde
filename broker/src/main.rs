//! `skiff`: start a Kafka-compatible broker. With no flags it keeps its data in `./data` and
//! listens on port 9092.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_broker::broker::Broker;
use skiff_broker::clock::now_ms;
use skiff_broker::config::BrokerConfig;
use skiff_broker::listener::{self, DEFAULT_LISTENER_NAME, Listener};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Survives the 2^31-element capacities kafka-protocol reserves from request bytes (see its docs).
#[global_allocator]
static ALLOC: skiff_protocol::HugeAlloc = skiff_protocol::HugeAlloc;

#[derive(Debug, Parser)]
#[command(name = "skiff", version, about = "A Kafka-compatible log broker")]
struct Args {
    /// Where partitions and metadata live (Kafka's log.dirs).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address to accept Kafka clients on.
    #[arg(long, env = "SKIFF_LISTEN", default_value = "0.0.0.0:9092")]
    listen: SocketAddr,
    /// host:port clients are told to connect to (Kafka's advertised.listeners); defaults to the
    /// listen address, with localhost for 0.0.0.0.
    #[arg(long, env = "SKIFF_ADVERTISED")]
    advertised: Option<String>,
    /// Named listeners instead of --listen (Kafka's listeners), e.g.
    /// INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092; each client is answered with the
    /// brokers' addresses on the listener it connected to.
    #[arg(long, env = "SKIFF_LISTENERS", conflicts_with_all = ["listen", "advertised"])]
    listeners: Option<String>,
    /// What clients of each named listener are told (Kafka's advertised.listeners), e.g.
    /// INTERNAL://skiff-1:9092,EXTERNAL://localhost:19092.
    #[arg(long, env = "SKIFF_ADVERTISED_LISTENERS", requires = "listeners")]
    advertised_listeners: Option<String>,
    /// This broker's id (Kafka's node.id).
    #[arg(long, env = "SKIFF_NODE_ID", default_value_t = 0)]
    node_id: i32,
    /// The controller quorum of a cluster (Kafka's controller.quorum.voters), the same on every
    /// broker: id@host:port of each broker's replication listener. Unset: a single node.
    #[arg(long, env = "SKIFF_VOTERS")]
    voters: Option<String>,
    /// Address the replication (broker-to-broker) listener binds; defaults to 0.0.0.0 and the
    /// port of this broker's entry in --voters. Required for a broker that is not a voter (one
    /// added to a running cluster): it registers this address for the others to reach it.
    #[arg(long, env = "SKIFF_PEER_LISTEN")]
    peer_listen: Option<SocketAddr>,
    /// Any broker config by its Kafka name, e.g. --set num.partitions=8 --set log.retention.ms=3600000.
    /// Environment variables SKIFF_CONFIG_<NAME> do the same (SKIFF_CONFIG_MIN_INSYNC_REPLICAS=2
    /// sets min.insync.replicas); --set wins over them.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
}

/// Prefix of environment variables that set a broker config (see `Args::settings`).
const CONFIG_ENV_PREFIX: &str = "SKIFF_CONFIG_";

/// Broker configs from `SKIFF_CONFIG_*` variables: the rest of the name lower-cased, `_` as `.`.
fn env_settings(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(CONFIG_ENV_PREFIX)?;
            Some((name.to_ascii_lowercase().replace('_', "."), v))
        })
        .collect();
    out.sort();
    out
}

fn config_from(args: &Args) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::new(args.data_dir.clone(), args.listen);
    config
        .set("node.id", &args.node_id.to_string())
        .map_err(|e| anyhow::anyhow!("--node-id: {e}"))?;
    if let Some(listeners) = &args.listeners {
        let parsed = listener::parse(listeners, args.advertised_listeners.as_deref())
            .context("--listeners/--advertised-listeners")?;
        config.set_listeners(parsed)?;
    } else if let Some(adv) = &args.advertised {
        let (host, port) = adv.rsplit_once(':').context("--advertised must be host:port")?;
        let mut only = Listener::new(DEFAULT_LISTENER_NAME, args.listen);
        only.advertised_host = host.to_string();
        only.advertised_port = port.parse().context("--advertised port is not a number")?;
        config.set_listeners(vec![only])?;
    }
    for (name, value) in env_settings(std::env::vars()) {
        config.set(&name, value.trim()).map_err(|e| {
            anyhow::anyhow!(
                "{CONFIG_ENV_PREFIX}{}: {e}",
                name.to_ascii_uppercase().replace('.', "_")
            )
        })?;
    }
    if let Some(voters) = &args.voters {
        config
            .set("controller.quorum.voters", voters)
            .map_err(|e| anyhow::anyhow!("--voters: {e}"))?;
    }
    for setting in &args.settings {
        let (name, value) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting}: expected NAME=VALUE"))?;
        config
            .set(name.trim(), value.trim())
            .map_err(|e| anyhow::anyhow!("--set {setting}: {e}"))?;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files and container logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !skiff_protocol::malloc_tuning::keep_large_buffers() {
        tracing::debug!("malloc tuning not applied (not glibc)");
    }
    let args = Args::parse();
    let config = config_from(&args)?;
    let broker = tokio::task::spawn_blocking(move || Broker::open(config)).await??;
    if broker.config.is_cluster() {
        let me = broker.config.node_id;
        let voter_port = broker
            .config
            .controller_quorum_voters
            .iter()
            .find(|v| v.id == me)
            .map(|v| v.port);
        let peer_listen = match (args.peer_listen, voter_port) {
            (Some(addr), _) => addr,
            (None, Some(port)) => SocketAddr::from(([0, 0, 0, 0], port)),
            (None, None) => anyhow::bail!(
                "node.id {me} is not one of controller.quorum.voters: a broker joining a running cluster needs --peer-listen"
            ),
        };
        skiff_broker::cluster::Cluster::start(&broker, peer_listen)
            .await
            .context("cannot join the cluster")?;
        tracing::info!(%peer_listen, node_id = me, "replication listener up");
    }
    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for l in broker.config.listeners() {
        let socket = TcpListener::bind(l.bind)
            .await
            .with_context(|| format!("cannot listen on {} ({})", l.bind, l.name))?;
        tracing::info!(
            listener = %l.name,
            listen = %l.bind,
            advertised = %format!("{}:{}", l.advertised_host, l.advertised_port),
            cluster_id = %broker.cluster_id,
            "skiff is ready"
        );
        let name: std::sync::Arc<str> = l.name.as_str().into();
        servers.push(tokio::spawn(skiff_broker::server::serve(
            broker.clone(),
            socket,
            name,
            stopped.clone(),
        )));
    }
    tokio::spawn(retention_loop(broker.clone(), stopped));

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    for server in servers {
        let _ = server.await;
    }
    tokio::task::spawn_blocking(move || broker.shutdown()).await?;
    tracing::info!("logs closed cleanly");
    Ok(())
}

/// `log.retention.check.interval.ms`: deletes expired segments of every partition.
async fn retention_loop(broker: std::sync::Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = stopped.changed() => return,
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.enforce_retention(now_ms())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_variables_become_kafka_names() {
        let vars = [
            ("SKIFF_CONFIG_MIN_INSYNC_REPLICAS", "2"),
            ("PATH", "/usr/local/bin"),
            ("SKIFF_DATA_DIR", "/var/lib/skiff"),
            ("SKIFF_CONFIG_LOG_RETENTION_MS", "1000"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            env_settings(vars.into_iter()),
            vec![
                ("log.retention.ms".to_string(), "1000".to_string()),
                ("min.insync.replicas".to_string(), "2".to_string()),
            ]
        );
    }
}
