//! Where a consented recording begins: the cut point at the consent answer (R7.5, §201
//! StGB), and the transcript cut at the same instant.
//!
//! The rule. The consent that counts is the last `record_consent` invocation in
//! `transcript_with_tool_calls` whose arguments say `granted` (as [`super::compliance`]
//! decides it). The answer it records is the person's last non-empty `user` turn before
//! that invocation; the cut point is the start of that turn's first word, in whole
//! milliseconds from the call's start, rounded down. Everything before it, the agent's
//! opening and whatever the person said earlier ("Hallo?", "Wer ist da?"), is not kept;
//! the answer itself ("Ja, das ist in Ordnung.") is, as the proof of the consent.
//!
//! No safe cut point, so no audio and no verbatim transcript at all (§201 wins over the
//! wish to keep the call):
//! - the consent came from `call_analysis` only (R2.6's fallback): there is no turn to cut
//!   at; or no `record_consent` yes, or no user turn before it;
//! - the answer turn has no word timings;
//! - the timings are not trustworthy: a start or end that is not a finite non-negative
//!   number, a word ending before it starts, starts going backwards within a turn or
//!   turns starting before the one before them, a word ending after the call's duration,
//!   an earlier user turn still speaking after the cut, or no duration to check against.
//!
//! The transcript kept (see [`trim_transcript`]) has the same shape as the provider's
//! three fields, cut at the same instant: entries of `transcript_with_tool_calls` before
//! the answer turn are dropped (earlier tool calls included); in both turn lists, words
//! starting before the cut are dropped, a turn keeping only some of its words gets its
//! `content` rebuilt from them, and a turn with no word left (or none to place it in time,
//! in `transcript_object`) goes; the `transcript` text is rebuilt from the kept turns,
//! never taken from the provider's full text.

use serde_json::{Map, Value};

use super::compliance::CONSENT_TOOL;
use super::model::RawTranscripts;

/// Why a call has no safe cut point (a label for logs and metrics: no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCutPoint {
    /// No `record_consent` invocation saying yes (consent from the analysis only, or none).
    NoConsentToolCall,
    /// No user turn before the consent invocation.
    NoAnswerTurn,
    /// The answer turn carries no word timings.
    NoTimings,
    /// The timings contradict themselves or the call's duration.
    InconsistentTimings,
    /// The call's duration is unknown, so the timings cannot be checked.
    NoDuration,
    /// `transcript_with_tool_calls` is missing or not a list of turns.
    NoTranscript,
}

impl NoCutPoint {
    /// A fixed label (`no_timings`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::NoConsentToolCall => "no_consent_tool_call",
            Self::NoAnswerTurn => "no_answer_turn",
            Self::NoTimings => "no_timings",
            Self::InconsistentTimings => "inconsistent_timings",
            Self::NoDuration => "no_duration",
            Self::NoTranscript => "no_transcript",
        }
    }
}

type Turn = Map<String, Value>;

fn parse_turns(raw: Option<&serde_json::value::RawValue>) -> Option<Vec<Turn>> {
    serde_json::from_str::<Vec<Turn>>(raw?.get()).ok()
}

fn role(turn: &Turn) -> Option<&str> {
    turn.get("role").and_then(Value::as_str)
}

fn is_utterance(turn: &Turn) -> bool {
    matches!(role(turn), Some("agent" | "user"))
}

fn content(turn: &Turn) -> &str {
    turn.get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The words of a turn as (start, end) seconds; `None` when a word's timing is missing or
/// not a finite non-negative number, or ends before it starts.
fn timings(turn: &Turn) -> Option<Vec<(f64, f64)>> {
    let Some(words) = turn.get("words") else {
        return Some(Vec::new());
    };
    let words = words.as_array()?;
    words
        .iter()
        .map(|w| {
            let start = w.get("start")?.as_f64()?;
            let end = w.get("end")?.as_f64()?;
            (start.is_finite() && end.is_finite() && start >= 0.0 && end >= start)
                .then_some((start, end))
        })
        .collect()
}

fn granted(turn: &Turn) -> Option<bool> {
    let args = turn.get("arguments")?;
    let parsed = match args {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    parsed.get("granted")?.as_bool()
}

/// The index of the consent answer turn in `turns` (see the module docs).
fn answer_index(turns: &[Turn]) -> Result<usize, NoCutPoint> {
    let invocation = turns
        .iter()
        .rposition(|t| {
            role(t) == Some("tool_call_invocation")
                && t.get("name").and_then(Value::as_str) == Some(CONSENT_TOOL)
                && granted(t).is_some()
        })
        .ok_or(NoCutPoint::NoConsentToolCall)?;
    if turns.get(invocation).and_then(granted) != Some(true) {
        return Err(NoCutPoint::NoConsentToolCall);
    }
    turns[..invocation]
        .iter()
        .rposition(|t| role(t) == Some("user") && !content(t).trim().is_empty())
        .ok_or(NoCutPoint::NoAnswerTurn)
}

/// The cut point of a call in milliseconds from its start (see the module docs).
/// `duration_ms` is the call's duration as the provider reports it.
pub fn consent_cut_ms(
    transcripts: &RawTranscripts<'_>,
    duration_ms: Option<i64>,
) -> Result<u64, NoCutPoint> {
    let turns =
        parse_turns(transcripts.transcript_with_tool_calls).ok_or(NoCutPoint::NoTranscript)?;
    let answer = answer_index(&turns)?;
    let duration_ms = duration_ms
        .filter(|d| *d > 0)
        .ok_or(NoCutPoint::NoDuration)?;
    let duration_s = duration_ms as f64 / 1000.0;
    let first = timings(&turns[answer])
        .ok_or(NoCutPoint::InconsistentTimings)?
        .first()
        .copied()
        .ok_or(NoCutPoint::NoTimings)?;
    let cut_s = first.0;
    let mut previous_turn_start = 0.0_f64;
    for (i, turn) in turns.iter().enumerate().filter(|(_, t)| is_utterance(t)) {
        let words = timings(turn).ok_or(NoCutPoint::InconsistentTimings)?;
        let monotonic = words.windows(2).all(|w| w[1].0 >= w[0].0);
        let within = words.iter().all(|(_, end)| *end <= duration_s);
        let in_order = words.first().is_none_or(|(s, _)| *s >= previous_turn_start);
        // The person cannot still be speaking an earlier turn when the answer begins.
        let earlier_user_done =
            i >= answer || role(turn) != Some("user") || words.iter().all(|(_, e)| *e <= cut_s);
        if !(monotonic && within && in_order && earlier_user_done) {
            return Err(NoCutPoint::InconsistentTimings);
        }
        if let Some((start, _)) = words.first() {
            previous_turn_start = *start;
        }
    }
    // Whole milliseconds, rounded down: the answer's first word is never cut into.
    Ok((cut_s * 1000.0).floor() as u64)
}

/// Keeps the words of `turn` starting at or after the cut; `None` when none is left (or
/// the turn has no timings). A turn losing some words gets its content rebuilt from them.
fn cut_turn(turn: &Turn, cut_ms: u64) -> Option<Turn> {
    let words = turn.get("words")?.as_array()?;
    let kept: Vec<Value> = words
        .iter()
        .filter(|w| {
            w.get("start")
                .and_then(Value::as_f64)
                .is_some_and(|s| s * 1000.0 >= cut_ms as f64)
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut out = turn.clone();
    if kept.len() < words.len() {
        let text: Vec<&str> = kept
            .iter()
            .filter_map(|w| w.get("word").and_then(Value::as_str))
            .collect();
        out.insert("content".into(), Value::String(text.join(" ")));
    }
    out.insert("words".into(), Value::Array(kept));
    Some(out)
}

/// `Agent: …` / `User: …` lines of the kept turns.
fn transcript_text(turns: &[Turn]) -> String {
    let mut text = String::new();
    for turn in turns {
        let label = match role(turn) {
            Some("agent") => "Agent: ",
            Some("user") => "User: ",
            _ => continue,
        };
        text.push_str(label);
        text.push_str(content(turn));
        text.push('\n');
    }
    text
}

/// The transcript to keep, cut at `cut_ms` (see the module docs): the JSON object
/// `{"transcript", "transcript_object", "transcript_with_tool_calls"}`, absent lists as
/// `null`.
pub fn trim_transcript(transcripts: &RawTranscripts<'_>, cut_ms: u64) -> String {
    let with_tools = parse_turns(transcripts.transcript_with_tool_calls).map(|turns| {
        let from = answer_index(&turns).unwrap_or(turns.len());
        turns
            .into_iter()
            .skip(from)
            .filter_map(|t| {
                if is_utterance(&t) && t.get("words").is_some() {
                    cut_turn(&t, cut_ms)
                } else {
                    Some(t)
                }
            })
            .collect::<Vec<_>>()
    });
    let object = parse_turns(transcripts.transcript_object).map(|turns| {
        turns
            .iter()
            .filter_map(|t| cut_turn(t, cut_ms))
            .collect::<Vec<_>>()
    });
    let text = match (&object, &with_tools) {
        (Some(turns), _) | (None, Some(turns)) => transcript_text(turns),
        (None, None) => String::new(),
    };
    serde_json::json!({
        "transcript": text,
        "transcript_object": object,
        "transcript_with_tool_calls": with_tools,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn words(text: &str, start: f64) -> Value {
        Value::Array(
            text.split_whitespace()
                .enumerate()
                .map(|(i, w)| {
                    let s = start + i as f64 * 0.3;
                    json!({"word": w, "start": s, "end": s + 0.25})
                })
                .collect(),
        )
    }

    fn turn(role: &str, text: &str, start: f64) -> Value {
        json!({"role": role, "content": text, "words": words(text, start)})
    }

    fn consent(granted: bool) -> Value {
        json!({"role": "tool_call_invocation", "tool_call_id": "t1", "name": "record_consent",
               "arguments": format!("{{\"granted\": {granted}}}")})
    }

    /// A call: "Hallo?" by the person, the opening, "Ja, gern." at 4.2 s, the tool call,
    /// then the conversation.
    fn call() -> Vec<Value> {
        vec![
            turn("user", "Hallo?", 0.2),
            turn(
                "agent",
                "Hier ist Polly, eine KI. Das Gespräch wird aufgezeichnet.",
                1.0,
            ),
            turn("user", "Ja, gern.", 4.2),
            consent(true),
            json!({"role": "tool_call_result", "tool_call_id": "t1", "content": "ok"}),
            turn("agent", "Danke. Worum geht es?", 6.0),
            turn("user", "Um den Pflaumenkuchen.", 8.0),
        ]
    }

    fn cut(turns: &[Value], duration: Option<i64>) -> Result<u64, NoCutPoint> {
        let w = raw(&Value::Array(turns.to_vec()));
        let t = RawTranscripts {
            transcript_with_tool_calls: Some(&w),
            ..RawTranscripts::default()
        };
        consent_cut_ms(&t, duration)
    }

    /// R7.5: the cut point is the start of the first word of the person's last turn before
    /// the `record_consent` yes, in whole milliseconds rounded down.
    #[test]
    fn the_cut_is_the_start_of_the_consent_answer() {
        assert_eq!(cut(&call(), Some(12_000)), Ok(4200));
        let mut c = call();
        c[2]["words"][0]["start"] = json!(4.2009);
        assert_eq!(cut(&c, Some(12_000)), Ok(4200));
        // A silent turn between the answer and the tool call does not move it.
        c.insert(3, json!({"role": "user", "content": "  ", "words": []}));
        assert_eq!(cut(&c, Some(12_000)), Ok(4200));
    }

    /// R7.5: of several consent invocations the last decides: a later "yes" after a "no"
    /// cuts at the answer before the later invocation; a last "no" has no cut point.
    #[test]
    fn the_last_invocation_decides_which_answer_is_the_cut() {
        let mut c = call();
        c[3] = consent(false);
        assert_eq!(cut(&c, Some(20_000)), Err(NoCutPoint::NoConsentToolCall));
        c.push(turn("user", "Doch, ja.", 10.0));
        c.push(consent(true));
        assert_eq!(cut(&c, Some(20_000)), Ok(10_000));
    }

    /// R7.5: no safe cut point when the answer has no timings, a timing is negative,
    /// words go backwards, a turn starts before the previous one, a word ends after the
    /// call, an earlier user turn overlaps the answer, the duration is unknown, or there
    /// is no tool call or no answer turn.
    #[test]
    fn untrustworthy_timings_give_no_cut_point() {
        let ok = call();
        let mut cases: Vec<(Vec<Value>, Option<i64>, NoCutPoint)> = Vec::new();
        let mut c = ok.clone();
        c[2]["words"] = json!([]);
        cases.push((c, Some(12_000), NoCutPoint::NoTimings));
        let mut c = ok.clone();
        c[2].as_object_mut().unwrap().remove("words");
        cases.push((c, Some(12_000), NoCutPoint::NoTimings));
        let mut c = ok.clone();
        c[1]["words"][0]["start"] = json!(-0.5);
        cases.push((c, Some(12_000), NoCutPoint::InconsistentTimings));
        let mut c = ok.clone();
        c[5]["words"][2]["start"] = json!(5.0);
        cases.push((c, Some(12_000), NoCutPoint::InconsistentTimings));
        let mut c = ok.clone();
        c[6]["words"] = words("Um den Pflaumenkuchen.", 3.0);
        cases.push((c, Some(12_000), NoCutPoint::InconsistentTimings));
        let mut c = ok.clone();
        c[2]["words"][1]["start"] = json!("4.5");
        cases.push((c, Some(12_000), NoCutPoint::InconsistentTimings));
        cases.push((ok.clone(), Some(8_500), NoCutPoint::InconsistentTimings));
        let mut c = ok.clone();
        c[0]["words"][0]["end"] = json!(4.5);
        cases.push((c, Some(12_000), NoCutPoint::InconsistentTimings));
        cases.push((ok.clone(), None, NoCutPoint::NoDuration));
        cases.push((
            ok[..3].to_vec(),
            Some(12_000),
            NoCutPoint::NoConsentToolCall,
        ));
        cases.push((ok[3..].to_vec(), Some(12_000), NoCutPoint::NoAnswerTurn));
        for (i, (turns, duration, want)) in cases.into_iter().enumerate() {
            assert_eq!(cut(&turns, duration), Err(want), "case {i}");
        }
        let none = RawTranscripts::default();
        assert_eq!(
            consent_cut_ms(&none, Some(1)),
            Err(NoCutPoint::NoTranscript)
        );
    }

    /// R7.5: the kept transcript begins at the consent answer in all three fields: the
    /// opening, the earlier "Hallo?" and their words are gone, the text is rebuilt from
    /// the kept turns, and a turn overlapping the cut keeps only its later words.
    #[test]
    fn the_transcript_begins_at_the_consent_answer() {
        let with_tools = Value::Array(call());
        let mut object: Vec<Value> = call()
            .into_iter()
            .filter(|t| t.get("words").is_some())
            .collect();
        // The agent still talking over the answer: its last words come after the cut.
        object[1]["words"][8]["start"] = json!(4.3);
        object[1]["words"][8]["end"] = json!(4.5);
        let full = "Agent: Hier ist Polly …\nUser: Hallo?\n";
        let (w, o, t) = (
            raw(&with_tools),
            raw(&Value::Array(object)),
            raw(&json!(full)),
        );
        let transcripts = RawTranscripts {
            transcript: Some(&t),
            transcript_object: Some(&o),
            transcript_with_tool_calls: Some(&w),
        };
        let kept: Value = serde_json::from_str(&trim_transcript(&transcripts, 4200)).unwrap();
        let text = kept["transcript"].as_str().unwrap();
        assert!(
            text.starts_with("Agent: aufgezeichnet.\nUser: Ja, gern.\n"),
            "{text}"
        );
        assert!(!text.contains("Hallo") && !text.contains("Polly"));
        let object = kept["transcript_object"].as_array().unwrap();
        assert_eq!(object.len(), 4);
        assert_eq!(object[1]["content"], "Ja, gern.");
        let tools = kept["transcript_with_tool_calls"].as_array().unwrap();
        assert_eq!(tools[0]["content"], "Ja, gern.");
        assert_eq!(tools[1]["name"], "record_consent");
        assert_eq!(tools.len(), 5);
        for turn in object.iter().chain(tools) {
            for w in turn["words"].as_array().into_iter().flatten() {
                assert!(w["start"].as_f64().unwrap() >= 4.2, "{w}");
            }
        }
        assert!(!kept.to_string().contains("Hallo"));
    }
}
