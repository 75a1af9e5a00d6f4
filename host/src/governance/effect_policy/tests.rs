//! Unit tests of the policy.

use super::*;

fn policy(network: &[&str]) -> EffectPolicy {
    let grants = Grants {
        network: network.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    EffectPolicy::from_grants(&grants, |p| p.to_path_buf()).unwrap()
}

#[test]
fn no_grant_denies_everything() {
    let p = EffectPolicy::deny_all();
    assert!(!p.check_egress("http", "example.com", 80).allowed());
    assert!(!p.env_allowed("HOME").allowed());
    assert!(p.environment(|_| Some("x".into())).is_empty());
}

#[test]
fn exact_wildcard_port_and_scheme() {
    let p = policy(&[
        "https://api.example.com:443",
        "http://*.test.local:*",
        "tcp://127.0.0.1:5432",
    ]);
    assert!(p.check_egress("https", "api.example.com", 443).allowed());
    assert!(p.check_egress("HTTPS", "API.example.com.", 443).allowed());
    assert!(
        !p.check_egress("https", "api.example.com", 8443).allowed(),
        "wrong port"
    );
    assert!(
        !p.check_egress("http", "api.example.com", 443).allowed(),
        "wrong scheme"
    );
    assert!(!p.check_egress("https", "evil.com", 443).allowed());
    assert!(!p
        .check_egress("https", "api.example.com.evil.com", 443)
        .allowed());
    assert!(p.check_egress("http", "a.test.local", 1).allowed());
    assert!(p.check_egress("http", "a.b.test.local", 65535).allowed());
    assert!(
        !p.check_egress("http", "test.local", 80).allowed(),
        "apex is not a subdomain"
    );
    assert!(!p.check_egress("http", "xtest.local", 80).allowed());
    assert!(p.check_egress("tcp", "127.0.0.1", 5432).allowed());
    assert!(!p.check_egress("udp", "127.0.0.1", 5432).allowed());
    assert!(p.any_egress("tcp") && !p.any_egress("udp"));
}

#[test]
fn a_wildcard_never_matches_an_ip_literal() {
    let p = policy(&[
        "tcp://*.0.0.1:*",
        "http://*.1:80",
        "http://*.example.com:80",
    ]);
    for (scheme, host, port) in [
        ("tcp", "127.0.0.1", 22),
        ("http", "10.0.0.1", 80),
        ("http", "::1", 80),
    ] {
        assert!(!p.check_egress(scheme, host, port).allowed(), "{host}");
    }
    let addr = "127.0.0.1:22".parse().unwrap();
    assert!(!p.check_socket(SocketUse::TcpConnect, addr, &[]).allowed());
    assert!(p.check_egress("http", "a.example.com", 80).allowed());
}

#[test]
fn a_denied_connect_is_judged_on_the_address_tried() {
    // No tcp grant: the implicit ephemeral bind the OS makes before a
    // connect is not what is refused; the connect is, naming its address.
    let p = policy(&["http://127.0.0.1:80"]);
    let any: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    assert!(p.check_socket(SocketUse::TcpBind, any, &[]).allowed());
    assert!(p
        .check_socket(SocketUse::UdpBind, "[::]:0".parse().unwrap(), &[])
        .allowed());
    let tried = "10.1.2.3:5432".parse().unwrap();
    match p.check_socket(SocketUse::TcpConnect, tried, &[]) {
        Decision::Deny(reason) => assert!(reason.contains("10.1.2.3:5432"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A bind to a chosen address or port stays refused.
    for bind in ["0.0.0.0:8080", "127.0.0.1:0"] {
        assert!(!p
            .check_socket(SocketUse::TcpBind, bind.parse().unwrap(), &[])
            .allowed());
    }
}

#[test]
fn lookups_follow_the_grants_and_the_resolved_address_rule() {
    let p = policy(&[
        "tcp://db.internal:5432",
        "tcp://*.example.com:443",
        "udp://127.0.0.1:53",
    ]);
    for name in ["db.internal", "DB.Internal.", "api.example.com"] {
        assert!(p.lookup_decision(name).allowed(), "{name}");
    }
    for name in ["evil.com", "example.com", "internal", "localhost"] {
        assert!(!p.lookup_decision(name).allowed(), "{name}");
    }
    assert!(!EffectPolicy::deny_all()
        .lookup_decision("db.internal")
        .allowed());
    let private: IpAddr = "10.0.0.5".parse().unwrap();
    let public: IpAddr = "93.184.216.34".parse().unwrap();
    // A name granted exactly may answer a private address; a wildcard
    // name only public ones.
    assert!(p.lookup_answer_allowed("db.internal", private));
    assert!(!p.lookup_answer_allowed("api.example.com", private));
    assert!(p.lookup_answer_allowed("api.example.com", public));
    // A connect to an address the plugin looked up is judged by the
    // name's grant, on that grant's scheme and port only.
    let names = ["db.internal".to_string()];
    let db = std::net::SocketAddr::new(private, 5432);
    assert!(!p.check_socket(SocketUse::TcpConnect, db, &[]).allowed());
    assert!(p.check_socket(SocketUse::TcpConnect, db, &names).allowed());
    let other_port = std::net::SocketAddr::new(private, 22);
    assert!(!p
        .check_socket(SocketUse::TcpConnect, other_port, &names)
        .allowed());
    assert!(!p.check_socket(SocketUse::UdpSend, db, &names).allowed());
    let wild = ["a.example.com".to_string()];
    let https_private = std::net::SocketAddr::new(private, 443);
    assert!(!p
        .check_socket(SocketUse::TcpConnect, https_private, &wild)
        .allowed());
    let https_public = std::net::SocketAddr::new(public, 443);
    assert!(p
        .check_socket(SocketUse::TcpConnect, https_public, &wild)
        .allowed());
    assert!(!p
        .check_socket(SocketUse::TcpConnect, https_public, &[])
        .allowed());
}

#[test]
fn ipv6_literals_normalize() {
    let p = policy(&["http://[::1]:8080"]);
    assert!(p.check_egress("http", "[::1]", 8080).allowed());
    assert!(p.check_egress("http", "0:0:0:0:0:0:0:1", 8080).allowed());
}

#[test]
fn bad_grants_are_rejected() {
    for g in [
        "example.com",
        "ftp://x:21",
        "http://*:80",
        "http://x",
        "http://x:99999",
        "http://a.*.com:80",
        "http://x:80/path",
        "http://*.:80",
    ] {
        assert!(EgressRule::parse(g).is_err(), "{g}");
    }
}

#[test]
fn private_addresses_need_a_by_name_grant() {
    let p = policy(&[
        "http://*.example.test:*",
        "http://named.example.test:80",
        "http://10.1.2.3:80",
    ]);
    let private: IpAddr = "127.0.0.1".parse().unwrap();
    let public: IpAddr = "93.184.216.34".parse().unwrap();
    assert!(!p
        .check_resolved("http", "any.example.test", 80, private)
        .allowed());
    assert!(p
        .check_resolved("http", "any.example.test", 80, public)
        .allowed());
    assert!(p
        .check_resolved("http", "named.example.test", 80, private)
        .allowed());
    assert!(
        p.check_resolved("http", "10.1.2.3", 80, "10.1.2.3".parse().unwrap())
            .allowed(),
        "a granted literal"
    );
}

#[test]
fn secrets_go_only_where_and_how_they_are_bound() {
    let bound = |methods: &[&str]| {
        EffectPolicy::deny_all().with_secrets(vec![BoundSecret {
            name: "TOKEN".into(),
            value: SecretValue::new("s3cr3t".into()),
            hosts: vec![EgressRule::parse("https://api.example.com:443").unwrap()],
            headers: vec!["authorization".into(), "x-api-key".into()],
            methods: methods.iter().map(|m| m.to_string()).collect(),
            unavailable: None,
        }])
    };
    let at = |host, port, header, method| SecretUse {
        scheme: "https",
        host,
        port,
        header,
        method,
    };
    let p = bound(&[]);
    let post_only = bound(&["POST"]);
    let ok = at("api.example.com", 443, "Authorization", "GET");
    assert_eq!(p.secret_for("TOKEN", ok).unwrap().expose(), "s3cr3t");
    assert!(p
        .secret_for("TOKEN", at("api.example.com", 443, "X-Api-Key", "POST"))
        .is_ok());
    let refused = [
        p.secret_for("TOKEN", at("evil.com", 443, "authorization", "GET")),
        p.secret_for("TOKEN", at("api.example.com", 8443, "authorization", "GET")),
        p.secret_for("OTHER", ok),
        p.secret_for("TOKEN", at("api.example.com", 443, "x-leak", "GET")),
        p.secret_for(
            "TOKEN",
            at("api.example.com", 443, "authorization", "TRACE"),
        ),
        p.secret_for(
            "TOKEN",
            at("api.example.com", 443, "authorization", "CONNECT"),
        ),
        post_only.secret_for("TOKEN", ok),
    ];
    for r in &refused {
        let msg = r.as_ref().unwrap_err();
        assert!(!msg.contains("s3cr3t"), "{msg}");
    }
    assert!(refused[2].as_ref().unwrap_err().contains("not granted"));
    assert!(refused[3].as_ref().unwrap_err().contains("`x-leak`"));
    assert!(refused[6].as_ref().unwrap_err().contains("GET"));
    assert!(bound(&["TRACE"])
        .secret_for(
            "TOKEN",
            at("api.example.com", 443, "authorization", "trace")
        )
        .is_ok());
    assert!(
        !format!("{p:?}").contains("s3cr3t"),
        "Debug leaks the value"
    );
}

#[test]
fn env_grants() {
    let grants = Grants {
        env: vec!["A".into(), "B".into()],
        ..Default::default()
    };
    let p = EffectPolicy::from_grants(&grants, |p| p.to_path_buf()).unwrap();
    assert!(p.env_allowed("A").allowed());
    assert!(!p.env_allowed("C").allowed());
    let env = p.environment(|n| (n == "A").then(|| "1".to_string()));
    assert_eq!(env, vec![("A".to_string(), "1".to_string())]);
}
