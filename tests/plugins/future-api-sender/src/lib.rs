//! A sender built against a future major of the plugin contract
//! (`arauto:plugin@1.0.0`): the host must refuse it by name and version.

wit_bindgen::generate!({ world: "sender", path: "wit" });

struct Future;

impl exports::arauto::plugin::sender_api::Guest for Future {
    fn hello() -> String {
        "from the future".into()
    }
}

export!(Future);
