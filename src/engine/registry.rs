//! Dispatch from a planned node to its kind's AWS side, generated from the one list of kinds
//! (`core::kinds::with_kinds!`): a kind without an `Apply` implementation does not compile.

use crate::aws::AwsError;
use crate::aws::kind::{Apply, Cx, Tx};
use crate::core::kinds::{Inputs, Item, Kind, Output};

macro_rules! dispatch {
    ($($K:ident $m:ident $field:ident,)*) => {
        /// Executes a planned node's change.
        pub(crate) async fn apply(
            item: &Item,
            cx: &Cx<'_>,
            id: &str,
            inputs: &Inputs,
        ) -> Result<Output, AwsError> {
            match item {
                $(Item::$K(desired, change) => desired.apply(cx, id, change, inputs).await,)*
            }
        }

        /// Deletes every resource of one kind that `down` found.
        pub(crate) async fn delete(kind: Kind, tx: &Tx<'_>) -> Result<(), AwsError> {
            match kind {
                $(Kind::$K => <crate::core::kinds::$m::$K as Apply>::delete(tx).await,)*
            }
        }
    };
}
crate::core::kinds::with_kinds!(dispatch);
