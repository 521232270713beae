use tokio_util::sync::CancellationToken;

use super::Supervisor;

#[tokio::test]
async fn tasks_that_run_until_shutdown_leave_the_health_good() {
    let shutdown = CancellationToken::new();
    let mut supervisor = Supervisor::new(shutdown.clone());
    let health = supervisor.health();
    for name in ["purge", "gauges"] {
        let shutdown = shutdown.clone();
        supervisor.spawn(name, async move { shutdown.cancelled().await });
    }
    assert!(health.dead().is_empty());
    shutdown.cancel();
    supervisor.join().await;
    assert!(health.dead().is_empty(), "{:?}", health.dead());
}

#[tokio::test]
async fn a_task_that_ends_before_shutdown_is_reported_by_name() {
    let shutdown = CancellationToken::new();
    let mut supervisor = Supervisor::new(shutdown.clone());
    let health = supervisor.health();
    supervisor.spawn("purge", async {});
    let running = shutdown.clone();
    supervisor.spawn("gauges", async move { running.cancelled().await });
    // Shutdown is not cancelled: the purge's watcher sees it end early.
    let (purge_watcher, rest) = {
        let mut watchers = supervisor.watchers;
        let first = watchers.remove(0);
        (first, watchers)
    };
    purge_watcher.await.unwrap();
    assert_eq!(health.dead(), vec!["purge"]);
    shutdown.cancel();
    for watcher in rest {
        watcher.await.unwrap();
    }
    assert_eq!(health.dead(), vec!["purge"], "the gauges ended at shutdown, as they should");
}

#[tokio::test]
async fn a_task_that_panics_is_reported_by_name() {
    let shutdown = CancellationToken::new();
    let mut supervisor = Supervisor::new(shutdown.clone());
    let health = supervisor.health();
    supervisor.spawn("key maintenance", async { panic!("a bug") });
    supervisor.join().await;
    assert_eq!(health.dead(), vec!["key maintenance"]);
}
