//! Which countries' numbers factors texts: the first defence against SMS pumping (toll
//! fraud), where bots make a service send codes to premium-rate numbers of a few countries
//! and its operator pays for every one.

use std::collections::BTreeSet;

use crate::PhoneNumber;

/// The regions SMS may go to, by each number's region in the numbering plan
/// ([`PhoneNumber::region`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SmsCountries {
    /// Every region (the default).
    #[default]
    All,
    /// These regions only.
    Only(BTreeSet<String>),
    /// Every region but these.
    AllBut(BTreeSet<String>),
}

/// A number whose region the [`SmsCountries`] rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SMS to numbers of region {region} are not allowed")]
pub struct CountryNotAllowed {
    pub region: String,
}

impl SmsCountries {
    /// The rule an allow list or a deny list makes; neither: every region. Codes are
    /// CLDR region codes (`CH`), any case, or `001` for numbers of no country.
    ///
    /// # Errors
    /// Both lists given, or a code that names no region, with the code.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let regions = |list: &[String]| {
            list.iter()
                .map(|code| {
                    let code = code.trim().to_ascii_uppercase();
                    if PhoneNumber::is_region(&code) { Ok(code) } else { Err(format!("{code:?} names no region")) }
                })
                .collect::<Result<BTreeSet<_>, _>>()
        };
        match (allow.is_empty(), deny.is_empty()) {
            (true, true) => Ok(Self::All),
            (false, true) => Ok(Self::Only(regions(allow)?)),
            (true, false) => Ok(Self::AllBut(regions(deny)?)),
            (false, false) => Err("give an allow list or a deny list, not both".to_owned()),
        }
    }

    /// The allow list and the deny list, as [`SmsCountries::new`] takes them (in order).
    pub fn lists(&self) -> (Vec<String>, Vec<String>) {
        match self {
            Self::All => (Vec::new(), Vec::new()),
            Self::Only(regions) => (regions.iter().cloned().collect(), Vec::new()),
            Self::AllBut(regions) => (Vec::new(), regions.iter().cloned().collect()),
        }
    }

    /// Whether SMS may go to `phone`.
    ///
    /// # Errors
    /// [`CountryNotAllowed`], naming the number's region.
    pub fn check(&self, phone: &PhoneNumber) -> Result<(), CountryNotAllowed> {
        // Placing a number parses it again: only when a list asks.
        let (listed, listed_are_allowed) = match self {
            Self::All => return Ok(()),
            Self::Only(regions) => (regions, true),
            Self::AllBut(regions) => (regions, false),
        };
        let region = phone.region();
        if listed.contains(&region) == listed_are_allowed { Ok(()) } else { Err(CountryNotAllowed { region }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(number: &str) -> PhoneNumber {
        PhoneNumber::parse(number).expect("valid")
    }

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn numbers_are_placed_in_their_region_even_where_regions_share_a_calling_code() {
        assert_eq!(phone("+41 79 123 45 67").region(), "CH");
        assert_eq!(phone("+1 415 555 2671").region(), "US");
        assert_eq!(phone("+1 604 555 5555").region(), "CA");
        assert_eq!(phone("+800 1234 5678").region(), PhoneNumber::NON_GEOGRAPHIC);
        assert_eq!(PhoneNumber::from_stored("+41791234567").expect("stored").region(), "CH");
    }

    #[test]
    fn an_allow_list_lets_only_its_regions_through_and_a_deny_list_all_but_its_own() {
        let only = SmsCountries::new(&codes(&["ch", " DE "]), &[]).expect("valid");
        assert_eq!(only.check(&phone("+41791234567")), Ok(()));
        assert_eq!(only.check(&phone("+14155552671")), Err(CountryNotAllowed { region: "US".into() }));
        assert_eq!(only.check(&phone("+80012345678")), Err(CountryNotAllowed { region: "001".into() }));

        assert_eq!(only.lists(), (codes(&["CH", "DE"]), vec![]));
        let all_but = SmsCountries::new(&[], &codes(&["CA", "001"])).expect("valid");
        assert_eq!(all_but.lists(), (vec![], codes(&["001", "CA"])), "in order");
        assert_eq!(SmsCountries::All.lists(), (vec![], vec![]));
        assert_eq!(all_but.check(&phone("+14155552671")), Ok(()), "US shares +1 with Canada");
        assert_eq!(all_but.check(&phone("+16045555555")), Err(CountryNotAllowed { region: "CA".into() }));
        assert!(all_but.check(&phone("+80012345678")).is_err());

        assert_eq!(SmsCountries::new(&[], &[]), Ok(SmsCountries::All));
        assert_eq!(SmsCountries::default().check(&phone("+80012345678")), Ok(()));
    }

    #[test]
    fn both_lists_or_a_code_of_no_region_are_refused() {
        assert!(SmsCountries::new(&codes(&["CH"]), &codes(&["DE"])).is_err());
        let unknown = SmsCountries::new(&codes(&["CH", "XX"]), &[]).expect_err("no such region");
        assert!(unknown.contains("\"XX\""), "{unknown}");
        assert!(SmsCountries::new(&codes(&["Switzerland"]), &[]).is_err());
    }
}
