//! Raft replication of partitions and of the cluster metadata. Filled in by the replicated-cluster
//! work (issue 4); empty until then.
