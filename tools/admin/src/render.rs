//! Human-readable output: tables and key/value lines. Nothing here prints personal data
//! a route did not return for that purpose (only `subject` and `consents` return any).

use serde_json::Value;

/// A cell: strings as they are, null as "-", everything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// `key  value` lines of an object; nested objects with dotted keys; arrays of objects
/// as tables after the lines.
fn key_values(v: &Value) -> String {
    let mut lines = Vec::new();
    let mut tables = String::new();
    flatten("", v, &mut lines, &mut tables);
    let width = lines
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out: String = lines
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect();
    out.push_str(&tables);
    out
}

fn flatten(prefix: &str, v: &Value, lines: &mut Vec<(String, String)>, tables: &mut String) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, lines, tables);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            tables.push_str(&format!("\n{prefix}:\n"));
            if items.is_empty() {
                tables.push_str("  (none)\n");
            }
            tables.push_str(&object_table(items));
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(cell).collect();
            lines.push((prefix.to_owned(), joined.join(", ")));
        }
        other => lines.push((prefix.to_owned(), cell(other))),
    }
}

/// A table of objects, columns in the order the keys first appear.
fn object_table(items: &[Value]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        if let Some(map) = item.as_object() {
            for k in map.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| cell(&item[c.as_str()])).collect())
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table(&headers, &rows)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

/// The open list: overdue first, then failed or stuck ones, then by days left.
fn open_list(v: &Value) -> String {
    let mut items: Vec<&Value> = v["requests"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let troubled = |r: &Value| r["failure_reason"].is_string() || r["stuck"] == true;
    items.sort_by_key(|r| {
        (
            r["overdue"] != true,
            !troubled(r),
            r["days_left"].as_i64().unwrap_or(i64::MAX),
        )
    });
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("No open requests.\n");
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|r| {
                let mut flags = Vec::new();
                if r["overdue"] == true {
                    flags.push("OVERDUE".to_owned());
                }
                if let Some(reason) = r["failure_reason"].as_str() {
                    flags.push(format!("FAILED ({reason})"));
                }
                if r["stuck"] == true {
                    flags.push("STUCK".to_owned());
                }
                if r["extended"] == true {
                    flags.push("extended".to_owned());
                }
                if let Some(at) = r["erasure_scheduled_at"].as_str() {
                    flags.push(format!("erasure at {at}"));
                }
                vec![
                    s(r, "request_id").to_owned(),
                    s(r, "type").to_owned(),
                    s(r, "status").to_owned(),
                    r["channel"].as_str().unwrap_or("").to_owned(),
                    s(r, "received_at").get(..10).unwrap_or("-").to_owned(),
                    s(r, "due_at").to_owned(),
                    r["days_left"]
                        .as_i64()
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    flags.join(", "),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "REQUEST",
                "TYPE",
                "STATUS",
                "CHANNEL",
                "RECEIVED",
                "DUE",
                "DAYS LEFT",
                "FLAGS",
            ],
            &rows,
        ));
        let overdue = items.iter().filter(|r| r["overdue"] == true).count();
        out.push_str(&format!(
            "{} open, {} overdue, {} failed or stuck\n",
            items.len(),
            overdue,
            items.iter().filter(|r| troubled(r)).count()
        ));
    }
    if let Some(pending) = v["provider_deletions"].as_array().filter(|p| !p.is_empty()) {
        let incidents = pending.iter().filter(|p| p["incident"] == true).count();
        out.push_str(&format!(
            "\nDeletions pending at the provider: {} ({} incidents)\n",
            pending.len(),
            incidents
        ));
        out.push_str(&object_table(pending));
    }
    out
}

fn show(v: &Value) -> String {
    let days = match (v["days_left"].as_i64(), v["overdue"] == true) {
        (Some(d), true) => format!(" (OVERDUE by {} days)", -d.min(0)),
        (Some(d), false) => format!(" ({d} days left)"),
        _ => String::new(),
    };
    let mut lines = vec![
        ("Request", s(v, "request_id").to_owned()),
        ("Type", s(v, "type").to_owned()),
        ("Status", s(v, "status").to_owned()),
        ("Channel", s(v, "channel").to_owned()),
        ("Received", s(v, "received_at").to_owned()),
        ("Due", format!("{}{days}", s(v, "due_at"))),
        ("Extended", cell(&v["extended"])),
    ];
    if let Some(r) = v["failure_reason"].as_str() {
        lines.push(("Failed", r.to_owned()));
    }
    if v["stuck"] == true {
        lines.push(("Stuck", "yes".to_owned()));
    }
    if let Some(at) = v["erasure_scheduled_at"].as_str() {
        lines.push(("Erasure at", at.to_owned()));
    }
    let mut out: String = lines
        .iter()
        .map(|(k, val)| format!("{k:<11} {val}\n"))
        .collect();
    out.push_str("\nTimeline:\n");
    let rows: Vec<Vec<String>> = v["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| {
                    vec![
                        s(e, "at").to_owned(),
                        s(e, "action").to_owned(),
                        s(e, "actor").to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["AT", "ACTION", "ACTOR"], &rows));
    out
}

fn stats(v: &Value) -> String {
    let mut out = format!("Requests from {} to {}\n", s(v, "from"), s(v, "to"));
    let Some(types) = v["types"].as_object().filter(|t| !t.is_empty()) else {
        out.push_str("No requests in this period.\n");
        return out;
    };
    let columns = [
        "received",
        "verified",
        "denied",
        "extended",
        "completed",
        "completed_on_time",
        "overdue_open",
        "median_days",
    ];
    let rows: Vec<Vec<String>> = types
        .iter()
        .map(|(kind, t)| {
            std::iter::once(kind.clone())
                .chain(columns.iter().map(|c| cell(&t[*c])))
                .collect()
        })
        .collect();
    out.push_str(&table(
        &[
            "TYPE",
            "RECEIVED",
            "VERIFIED",
            "DENIED",
            "EXTENDED",
            "COMPLETED",
            "ON TIME",
            "OVERDUE OPEN",
            "MEDIAN DAYS",
        ],
        &rows,
    ));
    out
}

fn export(v: &Value) -> String {
    let id = v["export_id"].as_str();
    match v["status"].as_str() {
        Some("running") => {
            let id = id.unwrap_or("-");
            format!("Export {id} is running.\nCheck it with: polly-admin analytics-status {id}\n")
        }
        Some("failed") => format!("Export {} failed.\n", id.unwrap_or("-")),
        _ => {
            let mut out = match id {
                Some(id) => format!("Export {id} is done.\n"),
                None => "Export done.\n".to_owned(),
            };
            out.push_str(&format!(
                "  calls exported  {}\n  calls omitted   {} (restricted, objecting or expiring subjects)\n",
                cell(&v["calls"]),
                cell(&v["omitted"])
            ));
            if let Some(key) = v["object_key"].as_str() {
                out.push_str(&format!("  object          {key}\n"));
            }
            out
        }
    }
}

/// What a successful `command` prints.
pub fn success(command: &str, v: &Value) -> String {
    match command {
        "list" => open_list(v),
        "show" => show(v),
        "stats" => stats(v),
        "analytics-export" | "analytics-status" => export(v),
        "verify-identity" => format!(
            "Identity verified for {}; status {}.\nRequest token for the subject's status page: {}\n",
            s(v, "request_id"),
            s(v, "status"),
            s(v, "request_token")
        ),
        "extend" => format!(
            "Extended {}: now due {}.\n",
            s(v, "request_id"),
            s(v, "due_at")
        ),
        "deny" => format!("Denied {}; the subject is told the reasons.\n", s(v, "request_id")),
        "retry" => format!(
            "{} is back with the worker (status {}).\n",
            s(v, "request_id"),
            s(v, "status")
        ),
        "enter" => format!(
            "Entered request {} (status {}), due {}.\n",
            s(v, "request_id"),
            s(v, "status"),
            s(v, "due_at")
        ),
        "record-contract" => format!("Contract {} recorded.\n", s(v, "contract_id")),
        "end-contract" => format!(
            "Contract {} ended at {}.\n",
            s(v, "contract_id"),
            s(v, "ended_at")
        ),
        "lift-restriction" => "Restriction lifted; the subject was notified.\n".to_owned(),
        "dnc-add" => if v["changed"] == true {
            "The number is now on the do-not-call list.\n"
        } else {
            "The number was on the do-not-call list already.\n"
        }
        .to_owned(),
        "dnc-lift" => if v["changed"] == true {
            "The number's do-not-call listing is lifted.\n"
        } else {
            "The number was not on the do-not-call list.\n"
        }
        .to_owned(),
        _ => key_values(v),
    }
}

/// The error lines for a route's refusal with `status` and `body` (problem+json, or API
/// Gateway's `{"message"}`).
pub fn refusal(status: u16, body: &Value) -> String {
    let mut out = format!("error: HTTP {status}");
    match (body["title"].as_str(), body["detail"].as_str()) {
        (Some(title), Some(detail)) => out.push_str(&format!(": {title}: {detail}")),
        (Some(title), None) => out.push_str(&format!(": {title}")),
        _ => {
            if let Some(m) = body["message"].as_str() {
                out.push_str(&format!(": {m}"));
            } else if let Some(text) = body.as_str() {
                out.push_str(&format!(": {}", text.chars().take(200).collect::<String>()));
            }
        }
    }
    out.push('\n');
    if let Some(errors) = body["errors"].as_array() {
        for e in errors {
            out.push_str(&format!(
                "  {}: {} ({})\n",
                s(e, "field"),
                s(e, "detail"),
                s(e, "code")
            ));
        }
    }
    if status == 403 {
        out.push_str(if body["message"].is_string() {
            "API Gateway refused the signature: the request is not signed with valid credentials \
             (check the credential chain, the clock and --region).\n"
        } else {
            "The staff function refused your principal: it is not in the stack's \
             StaffPrincipalArns (the refusal is audited).\n"
        });
    }
    out
}

/// `polly-admin sales queue|show|done` (issue 17).
pub fn sales(action: &str, v: &Value) -> String {
    match action {
        "queue" => {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return "No open follow-ups.\n".to_owned();
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    [
                        "ready_at",
                        "lead_id",
                        "first_name",
                        "last_name",
                        "call_date",
                        "interest",
                    ]
                    .iter()
                    .map(|k| cell(&i[*k]))
                    .collect()
                })
                .collect();
            format!(
                "{} open follow-up(s), earliest first:\n{}",
                items.len(),
                table(
                    &[
                        "ready",
                        "lead",
                        "first name",
                        "last name",
                        "call",
                        "interest"
                    ],
                    &rows
                )
            )
        }
        "done" => format!("Follow-up of {} marked done.\n", s(v, "lead_id")),
        _ => key_values(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Overdue first, then failed or stuck, then by days left; flags name the trouble.
    #[test]
    fn the_open_list_puts_overdue_first_and_marks_trouble() {
        let v = json!({"requests": [
            {"request_id": "a", "type": "access", "status": "in_progress", "received_at": "2026-11-01T10:00:00Z", "due_at": "2026-12-01", "days_left": 20, "overdue": false, "extended": false},
            {"request_id": "b", "type": "erasure", "status": "in_progress", "received_at": "2026-10-01T10:00:00Z", "due_at": "2026-11-01", "days_left": -3, "overdue": true, "extended": true},
            {"request_id": "c", "type": "access", "status": "failed", "received_at": "2026-11-05T10:00:00Z", "due_at": "2026-12-05", "days_left": 24, "overdue": false, "extended": false, "failure_reason": "export_failed"},
            {"request_id": "d", "type": "access", "status": "in_progress", "received_at": "2026-11-06T10:00:00Z", "due_at": "2026-12-06", "days_left": 25, "overdue": false, "extended": false, "stuck": true},
        ], "provider_deletions": [{"call_id": "call_1", "attempts": 9, "incident": true}]});
        let text = open_list(&v);
        let order: Vec<char> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.chars().next())
            .filter(|c| "abcd".contains(*c))
            .collect();
        assert_eq!(order, ['b', 'c', 'd', 'a'], "{text}");
        assert!(text.contains("OVERDUE, extended"), "{text}");
        assert!(text.contains("FAILED (export_failed)"), "{text}");
        assert!(text.contains("STUCK"), "{text}");
        assert!(
            text.contains("4 open, 1 overdue, 2 failed or stuck"),
            "{text}"
        );
        assert!(text.contains("Deletions pending at the provider: 1 (1 incidents)"));
    }

    #[test]
    fn refusals_print_title_detail_fields_and_explain_403() {
        let p = json!({"title": "Invalid request", "detail": "See errors", "status": 422,
            "errors": [{"field": "months", "code": "invalid", "detail": "1 or 2"}]});
        assert_eq!(
            refusal(422, &p),
            "error: HTTP 422: Invalid request: See errors\n  months: 1 or 2 (invalid)\n"
        );
        assert!(refusal(403, &json!({"title": "Forbidden", "detail": "x"}))
            .contains("StaffPrincipalArns"));
        assert!(refusal(403, &json!({"message": "Forbidden"})).contains("not signed"));
    }

    /// One request: deadline with days left or overdue days, flags, the timeline in the
    /// route's order (oldest first).
    #[test]
    fn show_prints_the_deadline_and_the_timeline() {
        let v = json!({"request_id": "r1", "type": "erasure", "status": "in_progress",
        "channel": "letter", "received_at": "2026-10-01T10:00:00Z", "due_at": "2026-11-01",
        "days_left": -4, "overdue": true, "extended": false, "failure_reason": "export_failed",
        "erasure_scheduled_at": "2026-11-03T10:00:00Z",
        "timeline": [
            {"at": "2026-10-01T10:00:00Z", "action": "dsar.received", "actor": "subject"},
            {"at": "2026-10-02T09:00:00Z", "action": "dsar.extended", "actor": "arn:aws:sts::1:assumed-role/staff/anna"}
        ]});
        let text = show(&v);
        assert!(
            text.contains("Due         2026-11-01 (OVERDUE by 4 days)"),
            "{text}"
        );
        assert!(text.contains("Failed      export_failed"), "{text}");
        assert!(text.contains("Erasure at  2026-11-03T10:00:00Z"), "{text}");
        let received = text.find("dsar.received").unwrap();
        let extended = text.find("dsar.extended").unwrap();
        assert!(received < extended, "{text}");
        let due = show(&json!({"due_at": "2026-12-01", "days_left": 3, "overdue": false}));
        assert!(due.contains("2026-12-01 (3 days left)"), "{due}");
    }

    /// One row per type with every figure; a period without requests says so.
    #[test]
    fn stats_print_one_row_per_type() {
        let v = json!({"from": "2026-11-01", "to": "2026-11-30", "types": {
            "access": {"received": 4, "verified": 3, "denied": 1, "extended": 1, "completed": 2,
                "completed_on_time": 2, "overdue_open": 0, "median_days": 6.5},
            "erasure": {"received": 1, "verified": 0, "denied": 0, "extended": 0, "completed": 0,
                "completed_on_time": 0, "overdue_open": 1, "median_days": null}}});
        let text = stats(&v);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            ["access", "4", "3", "1", "1", "2", "2", "0", "6.5"]
        );
        assert_eq!(rows[1], ["erasure", "1", "0", "0", "0", "0", "0", "1", "-"]);
        let empty = stats(&json!({"from": "a", "to": "b", "types": {}}));
        assert!(empty.contains("No requests in this period."));
    }

    #[test]
    fn tables_align_columns() {
        assert_eq!(
            table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]),
            "A    BB\nxyz  1\n"
        );
    }
}
