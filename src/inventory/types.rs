//! Names of the inventory enums as the rest of the hub and the file format use them
//! (the proto name without its prefix: `DPI`, `SHARED_GHT`), and the product key.

use unicode_normalization::UnicodeNormalization;

use crate::proto;

/// A proto enum of this domain, named by its code (the value name without prefix).
pub trait EnumCode: Sized + Copy + TryFrom<i32> + Into<i32> {
    /// The prefix of every value name, e.g. `FUNCTIONAL_DOMAIN_`.
    const PREFIX: &'static str;
    fn full_name(self) -> &'static str;
    fn from_full_name(name: &str) -> Option<Self>;

    /// `FUNCTIONAL_DOMAIN_DPI` → `DPI`.
    fn code(self) -> &'static str {
        let full = self.full_name();
        full.strip_prefix(Self::PREFIX).unwrap_or(full)
    }

    /// The value named `code` (case-insensitive, `-` or space read as `_`); never UNSPECIFIED.
    fn from_code(code: &str) -> Option<Self> {
        let c = code.trim().to_ascii_uppercase().replace(['-', ' '], "_");
        if c == "UNSPECIFIED" {
            return None;
        }
        Self::from_full_name(&format!("{}{c}", Self::PREFIX))
    }

    /// The code of an i32 value, or `?N` for a value this hub does not know.
    fn code_of(v: i32) -> String {
        Self::try_from(v).map(|e| e.code().to_string()).unwrap_or_else(|_| format!("?{v}"))
    }

    /// Every accepted code, in value order (for error messages and documentation).
    fn codes() -> Vec<&'static str> {
        (1..=64).filter_map(|v| Self::try_from(v).ok()).map(|e| e.code()).collect()
    }
}

macro_rules! enum_code {
    ($($ty:ident => $prefix:literal),* $(,)?) => {$(
        impl EnumCode for proto::$ty {
            const PREFIX: &'static str = $prefix;
            fn full_name(self) -> &'static str {
                self.as_str_name()
            }
            fn from_full_name(name: &str) -> Option<Self> {
                Self::from_str_name(name)
            }
        }
    )*};
}

enum_code! {
    InventorySource => "INVENTORY_SOURCE_",
    FunctionalDomain => "FUNCTIONAL_DOMAIN_",
    HostingMode => "HOSTING_MODE_",
    InterfaceStandard => "INTERFACE_STANDARD_",
    DataCentreKind => "DATA_CENTRE_KIND_",
    NetworkLinkKind => "NETWORK_LINK_KIND_",
    BackupFrequency => "BACKUP_FREQUENCY_",
    ContinuityPlanStatus => "CONTINUITY_PLAN_STATUS_",
    PssiStatus => "PSSI_STATUS_",
    HdsStatus => "HDS_STATUS_",
    StaffCategory => "STAFF_CATEGORY_",
    InventorySection => "INVENTORY_SECTION_",
    InventoryChangeKind => "INVENTORY_CHANGE_KIND_",
}

/// The identity of a product across establishments: `vendor/name`, Unicode NFC,
/// lower case, trimmed, inner whitespace collapsed. "Dedalus / DxCare " declared by
/// one DSI and "dedalus/dxcare" by another are the same product.
pub fn product_key(vendor: &str, name: &str) -> String {
    fn norm(s: &str) -> String {
        let s: String = s.nfc().collect::<String>().to_lowercase();
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    format!("{}/{}", norm(vendor), norm(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_refuse_unspecified() {
        assert_eq!(proto::FunctionalDomain::Dpi.code(), "DPI");
        assert_eq!(
            proto::FunctionalDomain::from_code("patient-administration"),
            Some(proto::FunctionalDomain::PatientAdministration)
        );
        assert_eq!(proto::HostingMode::from_code(" shared_ght "), Some(proto::HostingMode::SharedGht));
        assert_eq!(proto::HostingMode::from_code("UNSPECIFIED"), None);
        assert_eq!(proto::HostingMode::from_code("CLOUD"), None);
        assert_eq!(proto::HostingMode::codes(), vec!["ON_PREMISE", "SHARED_GHT", "HDS_HOST", "SAAS"]);
        assert_eq!(proto::HostingMode::code_of(99), "?99");
    }

    #[test]
    fn product_key_normalises() {
        assert_eq!(product_key("  Dedalus ", "Dx  Care"), "dedalus/dx care");
        assert_eq!(product_key("DEDALUS", "dx care"), product_key("dedalus", "Dx Care"));
        // Decomposed "é" (e + combining acute) matches the composed one.
        assert_eq!(product_key("Cre\u{301}ation", "X"), product_key("Création", "X"));
    }
}
