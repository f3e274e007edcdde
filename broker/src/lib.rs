//! The `skiff` server: listeners, request dispatch, partition manager and coordinators. Filled in by
//! the single-node broker work (issue 3); empty until then.
