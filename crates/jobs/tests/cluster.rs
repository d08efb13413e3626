//! The job queue on a three-server NATS cluster that this test starts itself (nats-server from
//! PATH, as scripts/lib.sh installs it): the config names all three servers, the streams keep
//! three replicas, and when the server leading the stream is killed, a job enqueued before is
//! still delivered and a job enqueued right after is taken.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobs::{JobsConfig, Queue};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Cluster {
    servers: Vec<Child>,
    clients: Vec<u16>,
    _dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_cluster() -> Cluster {
    let dir = std::env::temp_dir().join(format!("caudal-nats-cluster-{}", std::process::id()));
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let route_list = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers = (0..3)
        .map(|i| {
            Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &clients[i].to_string()])
                .args(["-n", &format!("caudal-test-{i}"), "--cluster_name", "caudal-test"])
                .args(["-cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                .args(["-routes", &route_list])
                .arg("-sd")
                .arg(dir.join(format!("n{i}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start nats-server ({e}): run the tests with scripts/test.sh, which installs it")
                })
        })
        .collect();
    Cluster {
        servers,
        clients,
        _dir: dir,
    }
}

#[tokio::test]
async fn three_servers_three_replicas_and_a_server_lost() {
    let mut cluster = start_cluster();
    let url = cluster
        .clients
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let cfg = JobsConfig {
        url,
        replicas: 3,
        ..JobsConfig::default()
    };
    // the cluster elects its JetStream leader after a few seconds: connect when it answers
    let deadline = Instant::now() + Duration::from_secs(60);
    let queue = loop {
        match Queue::connect(&cfg).await {
            Ok(q) => break q,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no JetStream on the cluster within 60 s: {e}"),
        }
    };
    let client = async_nats::connect(cfg.servers()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    for name in [cfg.stream.clone(), cfg.dead_letter_stream()] {
        let info = js
            .get_stream(&name)
            .await
            .expect("stream")
            .get_info()
            .await
            .expect("info");
        assert_eq!(info.config.num_replicas, 3, "{name}");
    }
    queue
        .enqueue("transcode", "video-r3", &"payload")
        .await
        .expect("enqueue");

    // the server leading the work stream goes: the job is on the other two, and a job
    // enqueued at once is taken once they have elected a new leader (enqueue tries again)
    let info = js
        .get_stream(&cfg.stream)
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("info");
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    let lost = (0..3)
        .find(|i| leader == format!("caudal-test-{i}"))
        .unwrap_or_else(|| panic!("leader {leader} is none of the three servers"));
    let server = &mut cluster.servers[lost];
    server.kill().expect("kill");
    server.wait().expect("wait");
    queue
        .enqueue("transcode", "video-after", &"later")
        .await
        .expect("a job enqueued right after the stream's leader was lost");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 2 {
        match queue.next(Duration::from_secs(2)).await {
            Ok(Some(job)) => {
                got.push((
                    job.id().to_string(),
                    job.decode::<String>().expect("decode"),
                ));
                job.done().await.expect("done");
            }
            Ok(None) | Err(_) if Instant::now() < deadline => continue,
            other => panic!("jobs delivered after a server was lost: {got:?}, then {other:?}"),
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("video-after".to_string(), "later".to_string()),
            ("video-r3".to_string(), "payload".to_string())
        ]
    );
}
