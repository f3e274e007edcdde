//! Commands a partition's replicas apply at one point of its Raft log, in log order: non-data
//! entries (empty data, so they take no Kafka offset) whose context names the command. Today one:
//! DeleteRecords, which moves every replica's log start at the same point of the log, so that a
//! record deleted on the leader is deleted on the replica that leads next.

/// Marks an entry's context as a command (raft-rs leaves the context to the application).
const PREFIX: &[u8] = b"skiff.cmd.";
const DELETE_RECORDS: &[u8] = b"skiff.cmd.delete-records";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCommand {
    /// Kafka's DeleteRecords: the log starts at this offset (never past the commit).
    DeleteRecords { before: u64 },
}

impl LogCommand {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            LogCommand::DeleteRecords { before } => [DELETE_RECORDS, &before.to_be_bytes()[..]].concat(),
        }
    }

    /// The command an entry's context holds: `None` for an ordinary entry, an error for a
    /// command this broker does not know (a newer broker wrote it).
    pub fn decode(context: &[u8]) -> Result<Option<LogCommand>, String> {
        if !context.starts_with(PREFIX) {
            return Ok(None);
        }
        if let Some(rest) = context.strip_prefix(DELETE_RECORDS) {
            let bytes: [u8; 8] = rest
                .try_into()
                .map_err(|_| "malformed delete-records command".to_string())?;
            return Ok(Some(LogCommand::DeleteRecords {
                before: u64::from_be_bytes(bytes),
            }));
        }
        Err(format!("unknown log command {:?}", String::from_utf8_lossy(context)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_others_are_told_apart() {
        let c = LogCommand::DeleteRecords { before: 123_456 };
        assert_eq!(LogCommand::decode(&c.encode()), Ok(Some(c)));
        assert_eq!(LogCommand::decode(b""), Ok(None));
        assert_eq!(LogCommand::decode(b"something else"), Ok(None));
        assert!(LogCommand::decode(b"skiff.cmd.delete-records\x01").is_err());
        assert!(LogCommand::decode(b"skiff.cmd.future").is_err());
    }
}
