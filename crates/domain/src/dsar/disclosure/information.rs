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
