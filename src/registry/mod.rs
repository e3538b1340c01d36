//! The registry of the territory: GHTs, their establishments (with their role in the
//! GHT) and party accounts.

pub mod service;
pub mod store;

use crate::proto;

pub fn establishment_role_str(r: proto::EstablishmentRole) -> &'static str {
    match r {
        proto::EstablishmentRole::Unspecified => "UNSPECIFIED",
        proto::EstablishmentRole::Support => "SUPPORT",
        proto::EstablishmentRole::Partie => "PARTIE",
        proto::EstablishmentRole::Associe => "ASSOCIE",
        proto::EstablishmentRole::Partenaire => "PARTENAIRE",
    }
}

pub fn category_str(c: proto::EstablishmentCategory) -> &'static str {
    c.as_str_name().trim_start_matches("ESTABLISHMENT_CATEGORY_")
}

pub fn parse_establishment_role(s: &str) -> proto::EstablishmentRole {
    proto::EstablishmentRole::from_str_name(&format!("ESTABLISHMENT_ROLE_{}", s.trim().to_ascii_uppercase()))
        .unwrap_or(proto::EstablishmentRole::Unspecified)
}

pub fn parse_category(s: &str) -> proto::EstablishmentCategory {
    proto::EstablishmentCategory::from_str_name(&format!("ESTABLISHMENT_CATEGORY_{}", s.trim().to_ascii_uppercase()))
        .unwrap_or(proto::EstablishmentCategory::Unspecified)
}
