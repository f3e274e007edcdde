//! `skiffctl`, the administration tool that speaks only the Kafka protocol. Filled in by issue 5;
//! empty until then.
