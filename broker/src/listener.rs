//! Named client listeners (Kafka's `listeners` / `advertised.listeners`): one broker can be
//! reached under different addresses from different networks — inside a docker network as
//! `skiff-1:9092`, from the host as `localhost:19092` — and Metadata must answer each client with
//! the addresses of the listener it came in on, or the client follows them into the wrong
//! network.

use std::net::SocketAddr;

/// The listener name of `--listen`/`--advertised` (Kafka's default listener name).
pub const DEFAULT_LISTENER_NAME: &str = "PLAINTEXT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// The address the listener binds.
    pub bind: SocketAddr,
    /// Host and port clients on this listener are told to connect to.
    pub advertised_host: String,
    pub advertised_port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenerError {
    #[error("'{0}' is not NAME://host:port")]
    Malformed(String),
    #[error("listener {0} is named twice")]
    Duplicate(String),
    #[error("advertised listener {0} has no listener of that name in listeners")]
    NotListening(String),
    #[error("no listeners given")]
    Empty,
}

impl Listener {
    /// A listener advertised under the address it binds (`localhost` for a wildcard address).
    pub fn new(name: &str, bind: SocketAddr) -> Self {
        let advertised_host = if bind.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            bind.ip().to_string()
        };
        Listener {
            name: name.to_string(),
            bind,
            advertised_host,
            advertised_port: bind.port(),
        }
    }
}

/// One `NAME://host:port` entry; an empty host means every interface, as in Kafka.
fn parse_entry(entry: &str) -> Result<(String, String, u16), ListenerError> {
    let malformed = || ListenerError::Malformed(entry.to_string());
    let (name, address) = entry.trim().split_once("://").ok_or_else(malformed)?;
    let (host, port) = address.rsplit_once(':').ok_or_else(malformed)?;
    let port: u16 = port.parse().map_err(|_| malformed())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(malformed());
    }
    Ok((name.to_ascii_uppercase(), host.to_string(), port))
}

/// Parses `listeners` (bind addresses) and `advertised.listeners` (what clients are told; a
/// listener missing from it is advertised as it binds). The first listener is the default one.
pub fn parse(listeners: &str, advertised: Option<&str>) -> Result<Vec<Listener>, ListenerError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in listeners.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = parse_entry(entry)?;
        if out.iter().any(|l| l.name == name) {
            return Err(ListenerError::Duplicate(name));
        }
        let ip = if host.is_empty() { "0.0.0.0" } else { host.as_str() };
        let bind: SocketAddr = format!("{ip}:{port}")
            .parse()
            .or_else(|_| format!("[{ip}]:{port}").parse())
            .map_err(|_| ListenerError::Malformed(entry.to_string()))?;
        out.push(Listener::new(&name, bind));
    }
    if out.is_empty() {
        return Err(ListenerError::Empty);
    }
    for entry in advertised.unwrap_or("").split(',').filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = parse_entry(entry)?;
        let listener = out
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or(ListenerError::NotListening(name))?;
        listener.advertised_host = if host.is_empty() { "localhost".to_string() } else { host };
        listener.advertised_port = port;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_outside_listeners() {
        let l = parse(
            "INTERNAL://0.0.0.0:9092,EXTERNAL://:19092",
            Some("INTERNAL://skiff-1:9092,external://localhost:19092"),
        )
        .expect("valid listeners");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "INTERNAL");
        assert_eq!(l[0].bind, "0.0.0.0:9092".parse().expect("addr"));
        assert_eq!((l[0].advertised_host.as_str(), l[0].advertised_port), ("skiff-1", 9092));
        assert_eq!(l[1].name, "EXTERNAL");
        assert_eq!(
            (l[1].advertised_host.as_str(), l[1].advertised_port),
            ("localhost", 19092)
        );
    }

    #[test]
    fn unadvertised_listener_is_advertised_as_it_binds() {
        let l = parse("PLAINTEXT://127.0.0.2:9092", None).expect("valid listener");
        assert_eq!(
            (l[0].advertised_host.as_str(), l[0].advertised_port),
            ("127.0.0.2", 9092)
        );
        let l = parse("PLAINTEXT://[::1]:9092", None).expect("ipv6");
        assert_eq!(l[0].bind, "[::1]:9092".parse().expect("addr"));
    }

    #[test]
    fn bad_listeners_are_refused() {
        assert!(matches!(
            parse("localhost:9092", None),
            Err(ListenerError::Malformed(_))
        ));
        assert!(matches!(
            parse("A://0.0.0.0:http", None),
            Err(ListenerError::Malformed(_))
        ));
        assert!(matches!(parse("A://name:9092", None), Err(ListenerError::Malformed(_))));
        assert_eq!(
            parse("A://:1,a://:2", None),
            Err(ListenerError::Duplicate("A".to_string()))
        );
        assert_eq!(
            parse("A://:1", Some("B://h:1")),
            Err(ListenerError::NotListening("B".to_string()))
        );
        assert_eq!(parse(" , ", None), Err(ListenerError::Empty));
    }
}
