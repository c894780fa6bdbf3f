//! The Art. 15(1)(a)–(h) and 15(2) information as JSON (`information.json`).

use super::*;

/// The Art. 15(1)(a)–(h) and Art. 15(2) GDPR information, built from the registry. This is
/// `information.json` in an export package; the keys are English, the texts written for the
/// data subject German, the registry's own descriptions English.
pub fn information() -> Value {
    let c = CONTROLLER;
    let controller = json!({
        "name": c.name,
        "representative": c.representative,
        "street": c.street,
        "postal_code_city": c.postal_code_city,
        "country": c.country,
        "email": c.email,
        "privacy_email": c.privacy_email,
        "website": c.website,
        "privacy_policy": PRIVACY_POLICY_URL,
    });

    let purposes: Vec<Value> = PURPOSES
        .iter()
        .map(|p| {
            json!({
                "code": p.code,
                "label_de": purpose_label_de(p.code),
                "description": p.description,
                "description_de": purpose_description_de(p.code),
                "legal_bases": purpose_legal_bases(p),
                "categories": p.categories,
            })
        })
        .collect();

    let categories: Vec<Value> = CATEGORIES
        .iter()
        .map(|c| {
            json!({
                "code": c.code,
                "label_de": category_label_de(c.code),
                "fields": c.fields,
                "fields_de": category_fields_de(c.code),
                "legal_basis": c.legal_basis,
                "legal_basis_de": legal_de(c.legal_basis),
            })
        })
        .collect();

    let recipients: Vec<Value> = all_recipients()
        .into_iter()
        .map(|(r, codes)| {
            json!({
                "name": r.name,
                "role": r.role,
                "role_de": recipient_role_de(r.name),
                "country": r.country,
                "third_country": is_third_country(&r),
                "transfer_safeguard": r.transfer_safeguard,
                "categories": codes,
            })
        })
        .collect();

    let retention: Vec<Value> = CATEGORIES
        .iter()
        .map(|c| {
            json!({
                "category": c.code,
                "class": c.retention.map(RetentionClass::code),
                "description": retention_text(c),
                "then": c.retention.map(|class| disposal_de(class.disposal())),
            })
        })
        .collect();

    let rights: Vec<Value> = RequestType::ALL
        .iter()
        .map(|t| {
            json!({
                "type": t.code(),
                "right": request_type_de(*t),
                "article": t.article(),
                "description": right_description_de(*t),
                "how_to_exercise": {
                    "route": DSAR_ROUTE,
                    "body": { "type": t.code() },
                    "or_email": c.privacy_email,
                },
            })
        })
        .collect();

    let sa = SUPERVISORY_AUTHORITY;
    let complaint = json!({
        "article": "Art. 77 DSGVO",
        "description": COMPLAINT_DE,
        "supervisory_authority": {
            "name": sa.name,
            "short_name": sa.short_name,
            "street": sa.street,
            "postal_code_city": sa.postal_code_city,
            "phone": sa.phone,
            "email": sa.email,
        },
    });

    let sources: Vec<Value> = SOURCES
        .iter()
        .map(|s| {
            json!({
                "code": s.code,
                "description": s.description_de,
                "categories": s.categories,
            })
        })
        .collect();
    let source = json!({
        "collected_from_data_subject": true,
        "other_sources": false,
        "description": NO_OTHER_SOURCES_DE,
        "sources": sources,
    });

    let automated_decision_making = json!({
        "exists": false,
        "profiling": false,
        "article": "Art. 22 DSGVO",
        "description": AUTOMATED_DECISIONS_DE,
    });

    let third_country_transfers: Vec<Value> = all_recipients()
        .into_iter()
        .filter(|(r, _)| is_third_country(r))
        .map(|(r, codes)| {
            json!({
                "recipient": r.name,
                "country": r.country,
                "safeguard": r.transfer_safeguard,
                "safeguard_de": r.transfer_safeguard.map(legal_de),
                "categories": codes,
            })
        })
        .collect();

    json!({
        "controller": controller,
        "purposes": purposes,
        "categories": categories,
        "recipients": recipients,
        "retention": retention,
        "rights": rights,
        "complaint": complaint,
        "source": source,
        "automated_decision_making": automated_decision_making,
        "third_country_transfers": third_country_transfers,
    })
}

/// The categories the CRM receives with a follow-up record (issue 17): name and contact
/// details, the agent's summary and analysis, the consent state.
pub const CRM_CATEGORIES: [&str; 3] = ["signup", "call_content", "consent_evidence"];

/// [`information`], naming the CRM (`registry::CRM`) among the recipients when one is
/// configured (`CRM_WEBHOOK_URL`), and not when it is not.
pub fn information_with(crm: bool) -> Value {
    let mut info = information();
    if crm {
        let r = registry::CRM;
        if let Some(list) = info["recipients"].as_array_mut() {
            list.push(json!({
                "name": r.name,
                "role": r.role,
                "role_de": recipient_role_de(r.name),
                "country": r.country,
                "third_country": is_third_country(&r),
                "transfer_safeguard": r.transfer_safeguard,
                "categories": CRM_CATEGORIES,
            }));
        }
    }
    info
}

#[cfg(test)]
mod crm_tests {
    use super::*;

    /// R4.4: the Art. 15 information (and the Art. 30 record) name the CRM as a recipient,
    /// with its categories, when a CRM is configured, and not when none is.
    #[test]
    fn the_crm_is_named_as_a_recipient_exactly_when_configured() {
        let name = registry::CRM.name;
        let without = information_with(false);
        assert_eq!(without, information());
        assert!(!without.to_string().contains(name));
        let with = information_with(true);
        let crm: Vec<&Value> = with["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == name)
            .collect();
        assert_eq!(crm.len(), 1, "{with}");
        assert_eq!(crm[0]["categories"], json!(CRM_CATEGORIES));
        assert!(crm[0]["role_de"]
            .as_str()
            .is_some_and(|r| r.contains("Vertrieb")));
        assert!(!super::super::ropa_with(false).contains(name));
        assert_eq!(super::super::ropa_with(false), super::super::ropa());
        let ropa = super::super::ropa_with(true);
        let at = ropa.find(name).expect("the record names the CRM");
        assert!(at < ropa.find("## Technische und organisatorische").unwrap());
    }
}
