//! What the ingest handler tests share: the clock's origin and the in-memory ports with one
//! order and its home zone.

use vigil_aws::memory::{MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::AdminStore;
use vigil_core::ProtectionOrder;
use vigil_ingest::Ports;

/// The tests' time origin, Unix ms.
pub const T0: i64 = 1_764_432_000_000;

/// Ingest's ports, in memory.
pub type TestPorts = Ports<MemoryStore, MemoryQueue, MemoryMetrics>;

/// The ports with `order` and vigil-testkit's home zone stored.
pub async fn ports_with(order: &ProtectionOrder) -> TestPorts {
    let store = MemoryStore::new();
    store.put_order(order).await.unwrap();
    store.put_zone(&vigil_testkit::home_zone()).await.unwrap();
    Ports::new(store, MemoryQueue::default(), MemoryMetrics::default())
}
