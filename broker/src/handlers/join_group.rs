//! JoinGroup: parks until the group's join phase ends, then answers with the new generation (the
//! leader also gets every member's metadata to assign from). v4+ new members first get their id
//! with MEMBER_ID_REQUIRED (KIP-394); v5+ carry `group.instance.id` (KIP-345).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::group::{JoinResponse, Protocol};
use crate::group_coordinator::JoinRequest;

/// The first version with a rebalance timeout (v0 uses the session timeout).
const REBALANCE_TIMEOUT_VERSION: i16 = 1;
/// The first version where a new member must first obtain its member id.
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// The first version with `group_instance_id`.
const GROUP_INSTANCE_ID_VERSION: i16 = 5;
/// The first version whose response carries the protocol type (and may leave names null).
const PROTOCOL_TYPE_VERSION: i16 = 7;
/// The first version whose response can tell the leader to skip the assignment (KIP-814).
const SKIP_ASSIGNMENT_VERSION: i16 = 9;

pub async fn handle(ctx: &Ctx<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let member_id = request.member_id.to_string();
    let group_instance_id = if ctx.version >= GROUP_INSTANCE_ID_VERSION {
        request.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    tracing::debug!(
        group = %request.group_id.0,
        member = %member_id,
        instance = ?group_instance_id,
        protocols = ?request.protocols.iter().map(|p| p.name.to_string()).collect::<Vec<_>>(),
        "join group"
    );
    let response = match ctx
        .broker
        .groups
        .ensure_coordinator(ctx.broker, &request.group_id.0)
        .await
    {
        Err(e) => JoinResponse::error(e, &member_id),
        Ok(()) => {
            let join = JoinRequest {
                group_id: request.group_id.0.to_string(),
                member_id: member_id.clone(),
                require_known_member_id: ctx.version >= MEMBER_ID_REQUIRED_VERSION && group_instance_id.is_none(),
                group_instance_id,
                client_id: ctx.client_id.clone(),
                // The request context does not carry the peer address.
                client_host: format!("/{}", ctx.peer.ip()),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: if ctx.version >= REBALANCE_TIMEOUT_VERSION {
                    request.rebalance_timeout_ms
                } else {
                    request.session_timeout_ms
                },
                protocol_type: request.protocol_type.to_string(),
                protocols: request
                    .protocols
                    .into_iter()
                    .map(|p| Protocol {
                        name: p.name.to_string(),
                        metadata: p.metadata,
                    })
                    .collect(),
                reason: request.reason.map(|r| r.to_string()),
            };
            ctx.broker.groups.join_group(join).await
        }
    };
    encode(ctx.version, response)
}

fn encode(version: i16, r: JoinResponse) -> JoinGroupResponse {
    if let Some(e) = r.error
        && e != ResponseError::MemberIdRequired
    {
        tracing::debug!(error = ?e, "join group refused");
    }
    // Older versions cannot express "skip the assignment": the leader gets no members instead,
    // so it assigns nothing, and the stable group keeps its assignment.
    let skip = r.skip_assignment && version >= SKIP_ASSIGNMENT_VERSION;
    let members = if r.skip_assignment && !skip {
        Vec::new()
    } else {
        r.members
    };
    let members = members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_metadata(m.metadata);
            if version >= GROUP_INSTANCE_ID_VERSION {
                member.with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
            } else {
                member
            }
        })
        .collect();
    let (protocol_type, protocol_name) = if version >= PROTOCOL_TYPE_VERSION {
        (
            r.protocol_type.as_deref().map(str_bytes),
            r.protocol_name.as_deref().map(str_bytes),
        )
    } else {
        (None, Some(str_bytes(r.protocol_name.as_deref().unwrap_or_default())))
    };
    JoinGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_generation_id(r.generation_id)
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(&r.leader))
        .with_skip_assignment(skip)
        .with_member_id(str_bytes(&r.member_id))
        .with_members(members)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::group::JoinedMember;

    fn leader_response(skip_assignment: bool) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: "m1".into(),
            skip_assignment,
            member_id: "m1".into(),
            members: vec![JoinedMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                metadata: Bytes::from_static(b"meta"),
            }],
        }
    }

    #[test]
    fn every_version_encodes_what_it_can_express() {
        for version in 0..=9 {
            for skip in [false, true] {
                let r = encode(version, leader_response(skip));
                let mut buf = Vec::new();
                r.encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("v{version} skip={skip}: {e}"));
                // Before KIP-814 a leader that must not assign gets no members to assign.
                let expected_members = if skip && version < SKIP_ASSIGNMENT_VERSION {
                    0
                } else {
                    1
                };
                assert_eq!(r.members.len(), expected_members, "v{version} skip={skip}");
            }
            let required = encode(version, JoinResponse::error(ResponseError::MemberIdRequired, "new-id"));
            let mut buf = Vec::new();
            required.encode(&mut buf, version).unwrap();
            assert_eq!(required.member_id.as_str(), "new-id");
        }
    }
}
