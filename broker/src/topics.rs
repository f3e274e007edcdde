//! The topic registry: names, ids, partition counts and config overrides, persisted as one
//! checkpoint file (`<data dir>/meta/topics`, JSON inside a CRC32-checked checkpoint) and written
//! before any change is acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_storage::checkpoint;
use uuid::Uuid;

/// Kafka's longest legal topic name.
const TOPIC_NAME_MAX_LEN: usize = 249;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Only the configs set on this topic; defaults come from the broker.
    pub configs: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("topic registry {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] skiff_storage::StorageError),
}

#[derive(Debug)]
pub struct TopicRegistry {
    path: PathBuf,
    topics: BTreeMap<String, Topic>,
}

impl TopicRegistry {
    pub fn load(meta_dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(meta_dir).map_err(|e| skiff_storage::StorageError::Io {
            context: "create metadata directory",
            path: meta_dir.to_path_buf(),
            source: e,
        })?;
        let path = meta_dir.join("topics");
        let topics = match checkpoint::read(&path)? {
            None if path.exists() => {
                return Err(RegistryError::Corrupt {
                    path,
                    reason: "fails its checksum".into(),
                });
            }
            None => BTreeMap::new(),
            Some(bytes) => {
                let list: Vec<Topic> = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                list.into_iter().map(|t| (t.name.clone(), t)).collect()
            }
        };
        Ok(TopicRegistry { path, topics })
    }

    fn save(&self) -> Result<(), RegistryError> {
        let list: Vec<&Topic> = self.topics.values().collect();
        let bytes = serde_json::to_vec(&list).map_err(|e| RegistryError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        checkpoint::write(&self.path, &bytes)?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<&Topic> {
        self.topics.values().find(|t| t.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    /// Adds or replaces a topic and persists the registry.
    pub fn put(&mut self, topic: Topic) -> Result<(), RegistryError> {
        let previous = self.topics.insert(topic.name.clone(), topic.clone());
        if let Err(e) = self.save() {
            match previous {
                Some(p) => self.topics.insert(p.name.clone(), p),
                None => self.topics.remove(&topic.name),
            };
            return Err(e);
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<Option<Topic>, RegistryError> {
        let Some(removed) = self.topics.remove(name) else {
            return Ok(None);
        };
        if let Err(e) = self.save() {
            self.topics.insert(removed.name.clone(), removed);
            return Err(e);
        }
        Ok(Some(removed))
    }
}

/// Kafka's topic name rule: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > TOPIC_NAME_MAX_LEN {
        return Err(format!("topic name is longer than {TOPIC_NAME_MAX_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name {name:?} contains the illegal character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = TopicRegistry::load(dir.path()).unwrap();
        let t = Topic {
            name: "clicks".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            internal: false,
        };
        r.put(t.clone()).unwrap();
        let r = TopicRegistry::load(dir.path()).unwrap();
        assert_eq!(r.get("clicks"), Some(&t));
        assert_eq!(r.get_by_id(t.id).map(|t| t.name.as_str()), Some("clicks"));
    }

    #[test]
    fn a_corrupt_registry_is_an_error_not_an_empty_cluster() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("topics"), b"garbage").unwrap();
        assert!(matches!(
            TopicRegistry::load(dir.path()),
            Err(RegistryError::Corrupt { .. })
        ));
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_name("clicks.v2_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
