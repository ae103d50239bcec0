//! The Redis scripts, one per operation, kept as `.lua` files.
//!
//! Each script is one round trip and declares every key it touches in `KEYS`, all of them in
//! one account's hash slot. Shared Lua (time and score helpers, event reads, session checks) is
//! prepended at compile time, so every script is self-contained on the server.

use redis::Script;

macro_rules! lua {
    ($($file:literal),+) => {
        concat!($(include_str!(concat!("../scripts/", $file)), "\n"),+)
    };
}

/// The compiled scripts. Built once per process; `Script` knows its SHA1 for EVALSHA.
pub struct Scripts {
    pub publish: Script,
    pub read: Script,
    pub login: Script,
    pub fetch: Script,
    pub heartbeat: Script,
    pub logout: Script,
    pub revoke_all: Script,
    pub presence: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            publish: Script::new(lua!("common.lua", "publish.lua")),
            read: Script::new(lua!("common.lua", "events.lua", "read.lua")),
            login: Script::new(lua!("common.lua", "events.lua", "login.lua")),
            fetch: Script::new(lua!("common.lua", "events.lua", "session.lua", "fetch.lua")),
            heartbeat: Script::new(lua!(
                "common.lua",
                "events.lua",
                "session.lua",
                "heartbeat.lua"
            )),
            logout: Script::new(lua!("common.lua", "session.lua", "logout.lua")),
            revoke_all: Script::new(lua!("revoke_all.lua")),
            presence: Script::new(lua!("common.lua", "presence.lua")),
        }
    }

    /// Every script, for loading them all after a flush or failover.
    pub fn all(&self) -> [&Script; 8] {
        [
            &self.publish,
            &self.read,
            &self.login,
            &self.fetch,
            &self.heartbeat,
            &self.logout,
            &self.revoke_all,
            &self.presence,
        ]
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
