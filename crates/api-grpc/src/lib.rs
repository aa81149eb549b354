//! placeholder
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]
    pub mod zitadel {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.v1.rs"));
        }
        pub mod object {
            pub mod v3alpha {
                include!(concat!(env!("OUT_DIR"), "/zitadel.object.v3alpha.rs"));
            }
        }
        pub mod resources {
            pub mod object {
                pub mod v3alpha {
                    include!(concat!(env!("OUT_DIR"), "/zitadel.resources.object.v3alpha.rs"));
                }
            }
            pub mod user {
                pub mod v3alpha {
                    include!(concat!(env!("OUT_DIR"), "/zitadel.resources.user.v3alpha.rs"));
                }
            }
        }
    }
    pub mod google {
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}
