//! A valid component that exports something other than `warden:provider/provider`.

wit_bindgen::generate!({
    inline: r#"
        package other:thing;
        interface greeter { hello: func() -> string; }
        world other { export greeter; }
    "#,
});

struct Other;

impl exports::other::thing::greeter::Guest for Other {
    fn hello() -> String {
        "not a provider".into()
    }
}

export!(Other);
