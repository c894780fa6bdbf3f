//! What we tell a data subject about our processing: the Art. 15(1)(a)–(h) and 15(2)
//! information (`information.json` in an export), the German read-me of the export
//! (`LIESMICH.txt`) and the Art. 30(1) record of processing activities (`ropa`).
//!
//! Everything here is derived from the processing registry (`domain::registry`) and the
//! retention classes (`domain::retention`), the single source the retention sweep also
//! uses, so what we tell people cannot drift from what the system does. This module adds
//! only what the registry does not hold: the controller's and the supervisory authority's
//! contact data, German labels for the registry's codes, and the fixed texts on rights,
//! sources and automated decisions. A test fails when a registry entry has no German label.
//!
//! Parts: `labels` (German labels and fixed texts), `information` (Art. 15 JSON), `doc`
//! (plain-text layout), `liesmich` (the export's read-me), `ropa` (Art. 30 record).

mod doc;
mod information;
mod labels;
mod liesmich;
mod ropa;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::RequestType;
use crate::registry::{self, DataCategory, Purpose, Recipient, CATEGORIES, PURPOSES};
use crate::retention::{Anchor, Disposal, Period, RetentionClass};

use doc::*;
pub use information::*;
#[allow(unused_imports)]
use information::*;
pub use labels::*;
#[allow(unused_imports)]
use labels::*;
pub use liesmich::*;
#[allow(unused_imports)]
use liesmich::*;
pub use ropa::*;
#[allow(unused_imports)]
use ropa::*;

/// The controller (Art. 4(7) GDPR), as named in §1 and §12 of the privacy policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controller {
    pub name: &'static str,
    pub street: &'static str,
    pub postal_code_city: &'static str,
    pub country: &'static str,
    pub representative: &'static str,
    pub email: &'static str,
    pub privacy_email: &'static str,
    pub website: &'static str,
}

pub const CONTROLLER: Controller = Controller {
    name: "KoBra Dataworks GmbH",
    street: "Am Bugapark 60",
    postal_code_city: "45899 Gelsenkirchen",
    country: "Deutschland",
    representative: "Geschäftsführer Jan Koch",
    email: "team@kobra-dataworks.de",
    privacy_email: "datenschutz@pollyki.de",
    website: "https://pollyki.de",
};

/// Where the current privacy policy is published (§11 of the policy).
pub const PRIVACY_POLICY_URL: &str = "https://pollyki.de/datenschutz";

/// The supervisory authority competent for the controller (§10.8 of the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisoryAuthority {
    pub name: &'static str,
    pub short_name: &'static str,
    pub street: &'static str,
    pub postal_code_city: &'static str,
    pub phone: &'static str,
    pub email: &'static str,
}

pub const SUPERVISORY_AUTHORITY: SupervisoryAuthority = SupervisoryAuthority {
    name: "Landesbeauftragte für Datenschutz und Informationsfreiheit Nordrhein-Westfalen",
    short_name: "LDI NRW",
    street: "Kavalleriestraße 2-4",
    postal_code_city: "40213 Düsseldorf",
    phone: "0211/38424-0",
    email: "poststelle@ldi.nrw.de",
};

/// The public route through which every right is exercised (R4.1).
pub const DSAR_ROUTE: &str = "POST /v1/dsar";

/// File names inside an export package (R4.4).
pub const README_FILE: &str = "LIESMICH.txt";
pub const DATA_FILE: &str = "data.json";
pub const INFORMATION_FILE: &str = "information.json";
pub const RECORDINGS_DIR: &str = "recordings/";
pub const TRANSCRIPTS_DIR: &str = "transcripts/";
pub const PORTABLE_JSON_FILE: &str = "portable.json";
pub const PORTABLE_CSV_FILE: &str = "portable.csv";

/// Maximum line width of the plain-text documents.
#[cfg(test)]
mod tests {
    use super::*;

    fn flat(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn ctx(request_type: RequestType, holds_data: bool) -> ReadmeContext<'static> {
        ReadmeContext {
            request_id: "req-0192f0c4",
            request_type,
            created_at: DateTime::parse_from_rfc3339("2027-02-28T14:05:00Z")
                .unwrap()
                .with_timezone(&Utc),
            holds_data,
            sign_up: holds_data,
            calls: 3,
            recordings: 2,
            transcripts: 1,
            sales_followup: false,
        }
    }

    #[test]
    fn every_registry_category_has_a_german_label_and_field_list() {
        for c in CATEGORIES {
            assert!(category_label_de(c.code).is_some(), "{}", c.code);
            assert!(category_fields_de(c.code).is_some(), "{}", c.code);
        }
        assert_eq!(category_label_de("no_such_category"), None);
    }

    #[test]
    fn every_registry_purpose_has_a_german_label_description_and_data_subjects() {
        for p in PURPOSES {
            assert!(purpose_label_de(p.code).is_some(), "{}", p.code);
            assert!(purpose_description_de(p.code).is_some(), "{}", p.code);
            assert!(data_subjects_de(p.code).is_some(), "{}", p.code);
        }
        assert_eq!(purpose_label_de("no_such_purpose"), None);
    }

    #[test]
    fn every_registry_recipient_has_a_german_role() {
        for (r, _) in all_recipients() {
            assert!(recipient_role_de(r.name).is_some(), "{}", r.name);
        }
    }

    #[test]
    fn every_retention_class_has_a_german_description() {
        for class in RetentionClass::ALL {
            let text = retention_de(class);
            assert!(text.contains(" ab "), "{text}");
            assert!(!text.trim().is_empty());
        }
        assert_eq!(
            retention_de(RetentionClass::Recording),
            "6 Kalendermonate ab Gesprächsende"
        );
        assert_eq!(
            retention_de(RetentionClass::Lead),
            "3 Jahre ab dem letzten Kontakt"
        );
        assert_eq!(
            retention_de(RetentionClass::Contract(
                crate::retention::ContractRecords::BookingVouchers
            )),
            "8 Jahre ab Ende des Kalenderjahres des Vertragsendes (§ 257 HGB, § 147 AO)"
        );
        assert_eq!(
            retention_de(RetentionClass::Verification),
            "15 Minuten ab Versand des Codes"
        );
    }

    #[test]
    fn legal_references_are_rendered_in_german_notation() {
        assert_eq!(
            legal_de("Art. 6(1)(b), (f) GDPR"),
            "Art. 6 Abs. 1 lit. b, lit. f DSGVO"
        );
        assert_eq!(
            legal_de("Art. 6(1)(b), (c) GDPR; §257 HGB, §147 AO"),
            "Art. 6 Abs. 1 lit. b, lit. c DSGVO; § 257 HGB, § 147 AO"
        );
        assert_eq!(
            legal_de("standard contractual clauses, Art. 46(2)(c) GDPR"),
            "Standardvertragsklauseln der EU-Kommission, Art. 46 Abs. 2 lit. c DSGVO"
        );
        for c in CATEGORIES {
            let de = legal_de(c.legal_basis);
            assert!(!de.contains("GDPR") && !de.contains("consent"), "{de}");
        }
    }

    /// R4.4: `information.json` holds each Art. 15(1)(a)–(h) item and the Art. 15(2)
    /// transfers, none empty: one entry per registry purpose and category, a retention
    /// per category, the supervisory authority, the source, no automated decisions.
    #[test]
    fn information_has_every_art_15_item_and_none_is_empty() {
        let info = information();
        let keys = [
            "controller",
            "purposes",
            "categories",
            "recipients",
            "retention",
            "rights",
            "complaint",
            "source",
            "automated_decision_making",
            "third_country_transfers",
        ];
        let object = info.as_object().unwrap();
        assert_eq!(object.len(), keys.len());
        for key in keys {
            let value = &info[key];
            let non_empty = match value {
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => false,
            };
            assert!(non_empty, "{key} missing or empty");
        }
        assert_eq!(info["purposes"].as_array().unwrap().len(), PURPOSES.len());
        assert_eq!(
            info["categories"].as_array().unwrap().len(),
            CATEGORIES.len()
        );
        assert_eq!(
            info["retention"].as_array().unwrap().len(),
            CATEGORIES.len()
        );
        assert_eq!(info["automated_decision_making"]["exists"], false);
        assert_eq!(info["source"]["other_sources"], false);
        assert_eq!(
            info["complaint"]["supervisory_authority"]["email"],
            "poststelle@ldi.nrw.de"
        );
        assert_eq!(
            info["controller"]["privacy_email"],
            "datenschutz@pollyki.de"
        );
    }

    /// R4.4: the information names every right (Art. 15(1)(e)) with its article and the
    /// request type and route that exercise it.
    #[test]
    fn information_lists_every_right_with_its_article_and_request_type() {
        let info = information();
        let rights = info["rights"].as_array().unwrap();
        for t in RequestType::ALL {
            let right = rights
                .iter()
                .find(|r| r["type"] == t.code())
                .unwrap_or_else(|| panic!("{} missing", t.code()));
            assert_eq!(right["article"], t.article());
            assert_eq!(right["how_to_exercise"]["route"], "POST /v1/dsar");
        }
    }

    /// R4.4: every US recipient of the registry appears among the third-country
    /// transfers with its safeguard (Art. 15(2)); AWS in Frankfurt does not.
    #[test]
    fn every_us_recipient_appears_in_third_country_transfers_with_its_safeguard() {
        let info = information();
        let transfers = info["third_country_transfers"].as_array().unwrap();
        let mut us = 0;
        for c in CATEGORIES {
            for r in c.recipients.iter().filter(|r| r.country == "USA") {
                us += 1;
                let t = transfers
                    .iter()
                    .find(|t| t["recipient"] == r.name)
                    .unwrap_or_else(|| panic!("{} missing", r.name));
                assert_eq!(t["country"], "USA");
                assert_eq!(t["safeguard"], r.transfer_safeguard.unwrap());
            }
        }
        assert!(us > 0, "the registry names US recipients");
        assert!(transfers
            .iter()
            .all(|t| t["recipient"] != registry::AWS.name));
    }

    #[test]
    fn information_recipients_are_distinct_and_carry_their_categories() {
        let info = information();
        let recipients = info["recipients"].as_array().unwrap();
        let mut names: Vec<_> = recipients.iter().map(|r| r["name"].clone()).collect();
        names.dedup();
        assert_eq!(names.len(), recipients.len());
        let openai = recipients
            .iter()
            .find(|r| r["name"] == registry::OPENAI.name)
            .unwrap();
        assert_eq!(openai["categories"], json!(["call_content", "recording"]));
    }

    #[test]
    fn every_category_has_a_source() {
        for c in CATEGORIES {
            assert!(
                SOURCES.iter().any(|s| s.categories.contains(&c.code)),
                "{}",
                c.code
            );
        }
    }

    #[test]
    fn wrapping_keeps_references_and_numbers_with_what_follows() {
        assert_eq!(
            glued_words("nach (§ 257 HGB) und Art. 6 Abs. 1 lit. b, 7 Tage"),
            [
                "nach",
                "(§ 257 HGB)",
                "und",
                "Art. 6 Abs. 1 lit. b,",
                "7 Tage"
            ]
        );
    }

    /// R4.4: the German `LIESMICH.txt` of an access package names the request, the
    /// package's expiry after 7 days, every file, every purpose and recipient, the
    /// retention, the rights and the supervisory authority, and no portability file.
    #[test]
    fn liesmich_contains_the_key_facts_and_every_file() {
        let text = liesmich(&ctx(RequestType::Access, true));
        let flat = flat(&text);
        for fact in [
            "Art. 15 DSGVO",
            "LDI NRW",
            "Kavalleriestraße 2-4",
            "40213 Düsseldorf",
            "0211/38424-0",
            "poststelle@ldi.nrw.de",
            "Art. 77 DSGVO",
            "7 Tage",
            "07.03.2027",
            // 14:05 UTC, in Berlin.
            "28.02.2027 um 15:05 Uhr",
            "req-0192f0c4",
            "LIESMICH.txt",
            "data.json",
            "information.json",
            "recordings/",
            "transcripts/",
            "3 Telefonat",
            "Anzahl: 2",
            "Anzahl: 1",
            "Standardvertragsklauseln",
            "6 Kalendermonate ab Gesprächsende",
            "POST /v1/dsar",
            "Art. 22 DSGVO",
            "datenschutz@pollyki.de",
            "Am Bugapark 60",
        ] {
            assert!(flat.contains(fact), "missing {fact:?}");
        }
        for p in PURPOSES {
            assert!(
                flat.contains(purpose_label_de(p.code).unwrap()),
                "{}",
                p.code
            );
        }
        for (r, _) in all_recipients() {
            assert!(flat.contains(r.name), "{}", r.name);
        }
        assert!(!flat.contains("portable.json"));
    }

    /// R4.4 (issue 17): when sales received a follow-up record, the read-me points to it
    /// in `data.json` and says what it holds and what sales does not get; otherwise it
    /// does not mention it.
    #[test]
    fn liesmich_names_the_sales_record_exactly_when_there_is_one() {
        let without = flat(&liesmich(&ctx(RequestType::Access, true)));
        assert!(!without.contains("sales_followup"));
        let with = flat(&liesmich(&ReadmeContext {
            sales_followup: true,
            ..ctx(RequestType::Access, true)
        }));
        for fact in [
            "\"sales_followup\"",
            "Vertrieb",
            "Zusammenfassung und Auswertung des Gesprächs",
            "Transkripte und Aufzeichnungen erhält der Vertrieb nicht",
        ] {
            assert!(with.contains(fact), "missing {fact:?}");
        }
    }

    /// R4.4: the read-me of a portability package cites Art. 20 and names
    /// `portable.json` and `portable.csv`.
    #[test]
    fn liesmich_for_portability_names_the_portable_files() {
        let flat = flat(&liesmich(&ctx(RequestType::Portability, true)));
        assert!(flat.contains("Art. 20 DSGVO"));
        assert!(flat.contains("portable.json"));
        assert!(flat.contains("portable.csv"));
        assert!(flat.contains("data.json"));
    }

    /// R4.4 (issue 12, item 1): a package of calls without a sign-up (found by the
    /// proven number) says that no sign-up is held and that only the calls' metadata is,
    /// and a portability package names no portable files it does not contain.
    #[test]
    fn liesmich_of_calls_without_a_sign_up_says_what_is_held_and_what_is_not() {
        for t in [RequestType::Access, RequestType::Portability] {
            let mut c = ctx(t, true);
            c.sign_up = false;
            c.calls = 2;
            c.recordings = 0;
            c.transcripts = 0;
            let flat = flat(&liesmich(&c));
            assert!(flat.contains("Eine Anmeldung haben wir zu den Angaben in Ihrer Anfrage nicht"));
            assert!(flat.contains("Gespeichert sind 2 Telefonat(e) mit Ihrer Telefonnummer"));
            assert!(flat.contains("keine Gesprächsinhalte, keine Aufzeichnungen"));
            assert!(flat.contains("Anzahl: 0"));
            assert!(!flat.contains("portable.json"), "{t:?}");
            assert!(!flat.contains("portable.csv"), "{t:?}");
        }
        let flat = flat(&liesmich(&{
            let mut c = ctx(RequestType::Portability, true);
            c.sign_up = false;
            c
        }));
        assert!(flat.contains("das Paket enthält deshalb keine eigene Datei dafür"));
    }

    #[test]
    fn liesmich_lines_are_at_most_100_characters() {
        for holds_data in [true, false] {
            for t in [RequestType::Access, RequestType::Portability] {
                for sign_up in [true, false] {
                    let mut c = ctx(t, holds_data);
                    c.sign_up = sign_up && holds_data;
                    let text = liesmich(&c);
                    for line in text.lines() {
                        assert!(line.chars().count() <= 100, "too long: {line}");
                    }
                }
            }
        }
        for line in ropa().lines() {
            assert!(line.chars().count() <= 100, "too long: {line}");
        }
    }

    /// R4.4: the read-me of a package about someone we hold nothing on says so, names
    /// the authority and the controller, and lists no recordings.
    #[test]
    fn liesmich_without_data_says_we_hold_none_and_names_the_authority() {
        let flat = flat(&liesmich(&ctx(RequestType::Access, false)));
        assert!(flat.contains("keine personenbezogenen Daten über Sie gespeichert"));
        assert!(flat.contains("Datensatz zu dieser Anfrage selbst"));
        assert!(flat.contains("LDI NRW"));
        assert!(flat.contains("Art. 77 DSGVO"));
        assert!(flat.contains("Kavalleriestraße 2-4"));
        assert!(flat.contains("datenschutz@pollyki.de"));
        assert!(flat.contains("data.json: nur der Datensatz zu Ihrer Anfrage"));
        assert!(flat.contains("information.json"));
        assert!(!flat.contains("recordings/"));
        assert!(!flat.contains("Empfänger (lit. c)"));
    }

    #[test]
    fn ropa_names_every_purpose_recipient_and_measure() {
        let text = ropa();
        let flat = flat(&text);
        for p in PURPOSES {
            assert!(flat.contains(&format!("`{}`", p.code)), "{}", p.code);
            assert!(
                flat.contains(purpose_label_de(p.code).unwrap()),
                "{}",
                p.code
            );
        }
        for c in CATEGORIES {
            for r in c.recipients {
                assert!(flat.contains(r.name), "{}", r.name);
            }
        }
        for fact in [
            "Art. 30 Abs. 1 DSGVO",
            "KoBra Dataworks GmbH",
            "Standardvertragsklauseln",
            "eu-central-1",
            "AES-256-GCM",
            "TLS",
            "IAM",
            "Blind-Indizes",
            "30 Tage",
            "lit. g",
        ] {
            assert!(flat.contains(fact), "missing {fact:?}");
        }
    }

    /// R7.1: the Art. 15 information (`information.json` and `LIESMICH.txt`) names the
    /// do-not-call list, what it holds and that it is kept after an erasure; the erasure's
    /// proof does not claim it erased.
    #[test]
    fn the_information_says_the_do_not_call_listing_outlives_erasure() {
        let info = information::information();
        let retention = info["retention"].as_array().unwrap();
        let dnc = retention
            .iter()
            .find(|r| r["category"] == "do_not_call")
            .expect("the do-not-call category");
        let text = dnc["description"].as_str().unwrap();
        assert!(
            text.contains("auch nach Löschung Ihrer übrigen Daten"),
            "{text}"
        );
        let readme = flat(&liesmich::liesmich(&ctx(RequestType::Access, true)));
        for fact in [
            "Sperrliste für Anrufe",
            "nicht umkehrbarer Prüfwert",
            "auch nach Löschung Ihrer übrigen Daten",
        ] {
            assert!(readme.contains(fact), "missing {fact:?}");
        }
        assert!(!crate::registry::erased_categories().any(|c| c.code == "do_not_call"));
    }
}
