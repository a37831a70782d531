//! One module per subcommand: its arguments and its `run`.

pub(crate) mod dialback_server;
pub(crate) mod doctor;
pub(crate) mod external_ip;
pub(crate) mod forwards;
pub(crate) mod map;
pub(crate) mod nat_type;
pub(crate) mod probe;
pub(crate) mod stun_server;
