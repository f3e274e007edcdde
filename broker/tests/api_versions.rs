//! Protocol conformance over the whole dispatch table: for every (API, version) the broker
//! advertises, a minimal valid request gets a response that decodes at that version, and the
//! connection stays open. This catches responses that set a field the negotiated version lacks
//! (kafka-protocol refuses to encode them, and the broker then closes the connection), and
//! advertised versions that the handler does not really serve. It runs generically over
//! `SUPPORTED`: an API registered without a request builder here fails with its name.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::{BrokerProcess, Client, api_versions_request};
use skiff_broker::dispatch::{SUPPORTED, supported_range};
use skiff_protocol::kafka_protocol;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The topic every data API reads and writes; it exists and holds a few batches.
const TOPIC: &str = "conformance";
/// Topic resource type of the config APIs (`ConfigResource.Type.TOPIC`).
const RESOURCE_TOPIC: i8 = 2;
/// Broker resource type of the config APIs.
const RESOURCE_BROKER: i8 = 4;
/// A session timeout inside `group.min.session.timeout.ms`..`group.max.session.timeout.ms`.
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// MEMBER_ID_REQUIRED (KIP-394): a first JoinGroup at v4+ gets a member id to rejoin with.
const MEMBER_ID_REQUIRED: i16 = 79;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

/// The running broker, a setup connection, and what the builders need to know.
struct Env {
    broker: BrokerProcess,
    setup: Client,
    topic_id: uuid::Uuid,
    batch: Bytes,
}

/// A member of a group that has joined and synced: what SyncGroup, Heartbeat, LeaveGroup and
/// OffsetCommit need.
struct Member {
    id: String,
    generation: i32,
    protocol: Option<String>,
}

impl Env {
    fn new() -> Self {
        let broker = BrokerProcess::start();
        let mut setup = broker.connect();
        common::create_topic(&mut setup, TOPIC, 1);
        let batch = common::record_batch(3, 20);
        for _ in 0..3 {
            common::produce(&mut setup, TOPIC, &batch);
        }
        let (_, metadata): (i32, MetadataResponse) = setup.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC))),
            ])),
        );
        let topic_id = metadata.topics[0].topic_id;
        assert!(!topic_id.is_nil(), "Metadata v12 gives {TOPIC} a topic id");
        Env {
            broker,
            setup,
            topic_id,
            batch,
        }
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        common::create_topic(&mut self.setup, name, partitions);
    }

    /// The highest version the broker serves of `api`, if it serves it at all.
    fn max_version(api: ApiKey) -> Option<i16> {
        supported_range(api).map(|(_, max)| max)
    }

    /// Joins `group_id` (rejoining once with the id a v4+ join hands out) and syncs, as the only
    /// member and so its leader, at the highest versions the broker serves.
    fn member(&mut self, group_id: &str) -> Member {
        let Some(join_version) = Self::max_version(ApiKey::JoinGroup) else {
            return Member {
                id: String::new(),
                generation: -1,
                protocol: None,
            };
        };
        let mut member_id = String::new();
        let mut joined = None;
        for _ in 0..3 {
            let request = join_request(join_version, group_id, &member_id);
            let (_, r): (i32, JoinGroupResponse) = self.setup.call(ApiKey::JoinGroup, join_version, &request);
            if r.error_code == MEMBER_ID_REQUIRED {
                member_id = r.member_id.to_string();
                continue;
            }
            assert_eq!(r.error_code, 0, "joining {group_id}: {r:?}");
            joined = Some(r);
            break;
        }
        let joined = joined.unwrap_or_else(|| panic!("could not join {group_id}"));
        let member = Member {
            id: joined.member_id.to_string(),
            generation: joined.generation_id,
            protocol: joined.protocol_name.as_ref().map(|p| p.to_string()),
        };
        if let Some(sync_version) = Self::max_version(ApiKey::SyncGroup) {
            let request = sync_request(sync_version, group_id, &member);
            let (_, r): (i32, SyncGroupResponse) = self.setup.call(ApiKey::SyncGroup, sync_version, &request);
            assert_eq!(r.error_code, 0, "syncing {group_id}: {r:?}");
        }
        member
    }

    /// Commits offset 1 of partition 0 for `group_id` as a simple (memberless) consumer.
    fn commit_offsets(&mut self, group_id: &str) {
        if let Some(v) = Self::max_version(ApiKey::OffsetCommit) {
            let request = offset_commit_request(v, group_id, None);
            let (_, r): (i32, OffsetCommitResponse) = self.setup.call(ApiKey::OffsetCommit, v, &request);
            assert_eq!(
                r.topics[0].partitions[0].error_code, 0,
                "committing for {group_id}: {r:?}"
            );
        }
    }
}

fn join_request(version: i16, group_id: &str, member_id: &str) -> JoinGroupRequest {
    let mut r = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
        ]);
    if version >= 1 {
        r = r.with_rebalance_timeout_ms(SESSION_TIMEOUT_MS);
    }
    if version >= 8 {
        r = r.with_reason(Some(s("conformance test")));
    }
    r
}

fn sync_request(version: i16, group_id: &str, member: &Member) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(member.generation)
        .with_member_id(s(&member.id))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member.id))
                .with_assignment(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ]);
    if version >= 5 {
        r = r
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(member.protocol.as_deref().map(s));
    }
    r
}

fn offset_commit_request(version: i16, group_id: &str, member: Option<&Member>) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(TOPIC))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s(""))),
                ]),
        ]);
    if let Some(m) = member {
        r = r
            .with_generation_id_or_member_epoch(m.generation)
            .with_member_id(s(&m.id));
    }
    if version >= 6 {
        r.topics[0].partitions[0].committed_leader_epoch = 0;
    }
    r
}

/// A minimal valid request of `api` at `version`, with whatever state it needs set up first;
/// `None` if this test has no builder for the API yet.
fn build(api: ApiKey, v: i16, env: &mut Env) -> Option<RequestKind> {
    use RequestKind as R;
    Some(match api {
        ApiKey::ApiVersions => R::ApiVersions(api_versions_request(v)),
        ApiKey::Metadata => R::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC))),
        ]))),
        ApiKey::Produce => {
            let data = produce_request::TopicProduceData::default().with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(env.batch.clone())),
            ]);
            let data = if v >= 13 {
                data.with_topic_id(env.topic_id)
            } else {
                data.with_name(topic(TOPIC))
            };
            R::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(10_000)
                    .with_topic_data(vec![data]),
            )
        }
        ApiKey::Fetch => {
            let t = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1024 * 1024),
            ]);
            let t = if v >= 13 {
                t.with_topic_id(env.topic_id)
            } else {
                t.with_topic(topic(TOPIC))
            };
            R::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(4 * 1024 * 1024)
                    .with_topics(vec![t]),
            )
        }
        ApiKey::ListOffsets => R::ListOffsets(ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
            vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic(TOPIC))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ],
        )),
        ApiKey::CreateTopics => {
            R::CreateTopics(CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic(&format!("created-v{v}")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]))
        }
        ApiKey::DeleteTopics => {
            let name = format!("deleted-v{v}");
            env.create_topic(&name, 1);
            let r = DeleteTopicsRequest::default().with_timeout_ms(10_000);
            R::DeleteTopics(if v >= 6 {
                r.with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(topic(&name))),
                ])
            } else {
                r.with_topic_names(vec![topic(&name)])
            })
        }
        ApiKey::CreatePartitions => {
            let name = format!("grown-v{v}");
            env.create_topic(&name, 1);
            R::CreatePartitions(
                CreatePartitionsRequest::default()
                    .with_timeout_ms(10_000)
                    .with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(topic(&name))
                            .with_count(2)
                            // null: the broker places the new partition (an empty list is an error)
                            .with_assignments(None),
                    ]),
            )
        }
        ApiKey::DescribeConfigs => R::DescribeConfigs(
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_include_documentation(v >= 3)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(s(TOPIC))
                        // null: every config (the default, an empty list, asks for none)
                        .with_configuration_keys(None),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_BROKER)
                        .with_resource_name(s("0"))
                        .with_configuration_keys(None),
                ]),
        ),
        ApiKey::AlterConfigs => R::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(s(TOPIC))
                .with_configs(vec![
                    alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("604800000"))),
                ]),
        ])),
        ApiKey::IncrementalAlterConfigs => {
            R::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(s(TOPIC))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("604800000"))),
                    ]),
            ]))
        }
        ApiKey::DeleteRecords => R::DeleteRecords(DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(
            vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic(TOPIC))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0),
                        ]),
                ],
        )),
        ApiKey::DescribeCluster => R::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeLogDirs => R::DescribeLogDirs(
            kafka_protocol::messages::DescribeLogDirsRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic(TOPIC))
                    .with_partitions(vec![0]),
            ])),
        ),
        ApiKey::ElectLeaders => R::ElectLeaders(
            kafka_protocol::messages::ElectLeadersRequest::default()
                .with_timeout_ms(1000)
                .with_topic_partitions(Some(vec![
                    kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                        .with_topic(topic(TOPIC))
                        .with_partitions(vec![0]),
                ])),
        ),
        ApiKey::AlterPartitionReassignments => R::AlterPartitionReassignments(
            kafka_protocol::messages::AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    kafka_protocol::messages::alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(topic(TOPIC))
                        .with_partitions(vec![
                            kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(0)
                                .with_replicas(Some(vec![kafka_protocol::messages::BrokerId(0)])),
                        ]),
                ]),
        ),
        ApiKey::ListPartitionReassignments => R::ListPartitionReassignments(
            kafka_protocol::messages::ListPartitionReassignmentsRequest::default().with_timeout_ms(1000),
        ),
        ApiKey::DescribeTopicPartitions => R::DescribeTopicPartitions(
            kafka_protocol::messages::DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(10)
                .with_topics(vec![
                    kafka_protocol::messages::describe_topic_partitions_request::TopicRequest::default()
                        .with_name(topic(TOPIC)),
                ]),
        ),
        ApiKey::UnregisterBroker => R::UnregisterBroker(
            kafka_protocol::messages::UnregisterBrokerRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(7)),
        ),
        ApiKey::OffsetForLeaderEpoch => {
            R::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(topic(TOPIC))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                    ]),
            ]))
        }
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorRequest::default();
            R::FindCoordinator(if v >= 4 {
                r.with_coordinator_keys(vec![s("conformance-group")])
            } else {
                r.with_key(s("conformance-group"))
            })
        }
        ApiKey::JoinGroup => {
            // From v4 a first join only hands out a member id (KIP-394); the request under test
            // is the rejoin with it, which completes the join and carries the member list.
            let group_id = format!("join-v{v}");
            let mut member_id = String::new();
            if v >= 4 && supported_range(ApiKey::JoinGroup).is_some_and(|(min, max)| (min..=max).contains(&v)) {
                let first = join_request(v, &group_id, "");
                let (_, r): (i32, JoinGroupResponse) = env.setup.call(ApiKey::JoinGroup, v, &first);
                assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "a first JoinGroup v{v}: {r:?}");
                member_id = r.member_id.to_string();
            }
            R::JoinGroup(join_request(v, &group_id, &member_id))
        }
        ApiKey::SyncGroup => {
            let group_id = format!("sync-v{v}");
            let Some(join_version) = Env::max_version(ApiKey::JoinGroup) else {
                // Without JoinGroup there is no member: an unknown one still gets an answer.
                let nobody = Member {
                    id: "nobody".into(),
                    generation: 1,
                    protocol: Some("range".into()),
                };
                return Some(R::SyncGroup(sync_request(v, &group_id, &nobody)));
            };
            let mut member_id = String::new();
            let mut joined = None;
            for _ in 0..3 {
                let request = join_request(join_version, &group_id, &member_id);
                let (_, r): (i32, JoinGroupResponse) = env.setup.call(ApiKey::JoinGroup, join_version, &request);
                if r.error_code == MEMBER_ID_REQUIRED {
                    member_id = r.member_id.to_string();
                    continue;
                }
                joined = Some(r);
                break;
            }
            let joined = joined.unwrap_or_else(|| panic!("could not join {group_id}"));
            let member = Member {
                id: joined.member_id.to_string(),
                generation: joined.generation_id,
                protocol: joined.protocol_name.as_ref().map(|p| p.to_string()),
            };
            R::SyncGroup(sync_request(v, &group_id, &member))
        }
        ApiKey::Heartbeat => {
            let group_id = format!("heartbeat-v{v}");
            let m = env.member(&group_id);
            R::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(group(&group_id))
                    .with_generation_id(m.generation)
                    .with_member_id(s(&m.id)),
            )
        }
        ApiKey::LeaveGroup => {
            let group_id = format!("leave-v{v}");
            let m = env.member(&group_id);
            let r = LeaveGroupRequest::default().with_group_id(group(&group_id));
            R::LeaveGroup(if v >= 3 {
                let identity = leave_group_request::MemberIdentity::default().with_member_id(s(&m.id));
                let identity = if v >= 5 {
                    identity.with_reason(Some(s("conformance test")))
                } else {
                    identity
                };
                r.with_members(vec![identity])
            } else {
                r.with_member_id(s(&m.id))
            })
        }
        ApiKey::OffsetCommit => {
            let group_id = format!("commit-v{v}");
            let m = env.member(&group_id);
            R::OffsetCommit(offset_commit_request(v, &group_id, Some(&m)))
        }
        ApiKey::OffsetFetch => {
            let group_id = format!("offsets-v{v}");
            env.commit_offsets(&group_id);
            R::OffsetFetch(if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group(&group_id))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(topic(TOPIC))
                                .with_partition_indexes(vec![0]),
                        ])),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(group(&group_id))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partition_indexes(vec![0]),
                    ]))
            })
        }
        ApiKey::ListGroups => R::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            let group_id = format!("described-v{v}");
            env.member(&group_id);
            R::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![group(&group_id)]))
        }
        ApiKey::DeleteGroups => {
            let group_id = format!("deleted-group-v{v}");
            env.commit_offsets(&group_id);
            R::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![group(&group_id)]))
        }
        ApiKey::OffsetDelete => {
            let group_id = format!("offset-delete-v{v}");
            env.commit_offsets(&group_id);
            R::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(group(&group_id))
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic(TOPIC))
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
                            ]),
                    ]),
            )
        }
        ApiKey::InitProducerId => R::InitProducerId(
            // An idempotent producer: no transactional id (the default, "", is INVALID_REQUEST).
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        ),
        ApiKey::DescribeProducers => R::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(topic(TOPIC))
                .with_partition_indexes(vec![0]),
        ])),
        _ => return None,
    })
}

/// The APIs `build` has a request for.
const BUILDERS: [ApiKey; 27] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DeleteRecords,
    ApiKey::DescribeCluster,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::InitProducerId,
    ApiKey::DescribeProducers,
];

/// Every builder's request encodes at every version kafka-protocol knows, advertised or not, so
/// an API registered later already has a request each of its versions can carry.
#[test]
fn every_builder_encodes_at_every_version() {
    let mut env = Env::new();
    let mut skipped = Vec::new();
    for api in BUILDERS {
        let valid = api.valid_versions();
        for v in valid.min..=valid.max {
            let request = build(api, v, &mut env).unwrap_or_else(|| panic!("{api:?} is in BUILDERS but not in build"));
            let mut buf = bytes::BytesMut::new();
            if let Err(e) = request.encode(&mut buf, v) {
                // `ApiKey::valid_versions` runs ahead of some message types (OffsetCommit v10):
                // such a version cannot be advertised anyway.
                let e = format!("{e:#}");
                assert!(
                    e.contains("version not supported by this message type"),
                    "{api:?} v{v} request does not encode: {e}"
                );
                skipped.push(format!("{api:?} v{v}"));
            }
        }
    }
    eprintln!("versions kafka-protocol lists but cannot encode: {skipped:?}");
}

/// Every advertised (API, version) answers a minimal valid request with a response that decodes
/// at that version, on a connection that stays open.
#[test]
fn every_supported_version_answers_a_minimal_request() {
    let mut env = Env::new();
    let mut missing = BTreeSet::new();
    let mut failures = Vec::new();
    let mut answered = 0;
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            let Some(request) = build(api, v, &mut env) else {
                missing.insert(format!("{api:?}"));
                continue;
            };
            let mut c = env.broker.connect();
            match c.call_kind(api, v, &request) {
                Ok(response) => {
                    answered += 1;
                    // Not a failure (some requests are refused on purpose), but worth a look.
                    let debug = format!("{response:?}");
                    if debug.contains("error_code: ")
                        && debug
                            .split("error_code: ")
                            .skip(1)
                            .any(|t| !t.starts_with("0,") && !t.starts_with("0 "))
                    {
                        eprintln!("{api:?} v{v} answered with an error: {debug}");
                    }
                }
                Err(e) => {
                    failures.push(format!("{api:?} v{v}: {e}"));
                    continue;
                }
            }
            // The connection is still open and usable.
            if let Err(e) = c.call_kind(
                ApiKey::ApiVersions,
                0,
                &RequestKind::ApiVersions(api_versions_request(0)),
            ) {
                failures.push(format!("{api:?} v{v}: the connection did not survive the request: {e}"));
            }
        }
        env.broker.assert_alive(&format!("{api:?} v{min}-v{max}"));
    }
    let log = env.broker.log();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} advertised versions failed:\n  {}\nbroker warnings and errors:\n{}",
        failures.len(),
        failures.len() + answered,
        failures.join("\n  "),
        complaints.join("\n")
    );
    assert!(
        missing.is_empty(),
        "no request builder in broker/tests/api_versions.rs for {missing:?}: whoever registers an API in \
         SUPPORTED adds one to `build`"
    );
    eprintln!("{answered} (api, version) pairs answered");
}

/// ApiVersions advertises exactly the dispatch table, at every version.
#[test]
fn api_versions_lists_exactly_the_supported_table() {
    let broker = BrokerProcess::start();
    let expected: Vec<(i16, i16, i16)> = SUPPORTED.iter().map(|&(k, min, max)| (k as i16, min, max)).collect();
    let (min, max) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    for v in min..=max {
        let mut c = broker.connect();
        let (_, r): (i32, ApiVersionsResponse) = c.call(ApiKey::ApiVersions, v, &api_versions_request(v));
        assert_eq!(r.error_code, 0, "v{v}");
        let listed: Vec<(i16, i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(listed, expected, "ApiVersions v{v} lists exactly SUPPORTED");
    }
    // And no API is advertised beyond what kafka-protocol (and so the broker) can decode.
    for &(api, min, max) in SUPPORTED {
        let valid = api.valid_versions();
        assert!(
            valid.min <= min && max <= valid.max && min <= max,
            "{api:?} v{min}-v{max} is outside v{}-v{}",
            valid.min,
            valid.max
        );
    }
}
