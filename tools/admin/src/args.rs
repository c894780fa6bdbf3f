//! Hand-rolled argument parsing: global options anywhere, one command, its positionals
//! and its options (`--name value` or `--name=value`; switches take no value).

use std::collections::BTreeMap;

/// Options every command accepts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Global {
    pub api_url: Option<String>,
    pub region: Option<String>,
    pub json: bool,
    pub help: bool,
}

/// A parsed command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub global: Global,
    pub command: Option<String>,
    pub positionals: Vec<String>,
    /// Options with values, in the order given (repeatable ones keep every value).
    pub options: BTreeMap<String, Vec<String>>,
    pub switches: Vec<String>,
}

impl Parsed {
    /// The last value of option `name`.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.options
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.options.get(name).cloned().unwrap_or_default()
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// Parses `args` (without the program name). `takes_value(command, option)` says which
/// options of a command take a value and `is_switch(command, option)` which are switches;
/// anything else is an error naming the option.
pub fn parse(
    args: &[String],
    takes_value: impl Fn(&str, &str) -> bool,
    is_switch: impl Fn(&str, &str) -> bool,
) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            p.positionals.extend(args[i..].iter().cloned());
            break;
        }
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| (arg == "-h").then_some("help"))
        else {
            if p.command.is_none() {
                p.command = Some(arg.clone());
            } else {
                p.positionals.push(arg.clone());
            }
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let command = p.command.clone().unwrap_or_default();
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            i += 1;
            Ok(v)
        };
        match name {
            "help" => p.global.help = true,
            "json" => p.global.json = true,
            "api-url" => p.global.api_url = Some(value()?),
            "region" => p.global.region = Some(value()?),
            _ if takes_value(&command, name) => {
                let v = value()?;
                p.options.entry(name.to_owned()).or_default().push(v);
            }
            _ if is_switch(&command, name) && inline.is_none() => p.switches.push(name.to_owned()),
            _ if command.is_empty() => {
                return Err(format!(
                    "unknown option --{name} (options of a command go after it)"
                ))
            }
            _ => return Err(format!("unknown option --{name} for `{command}`")),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Parsed, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(
            &args,
            |c, o| c == "deny" && o == "reason",
            |c, o| c == "export" && o == "no-wait",
        )
    }

    #[test]
    fn global_options_anywhere_command_options_after_the_command() {
        let p = parse_line("--json deny ID --reason a --reason=b --api-url http://x").unwrap();
        assert!(p.global.json);
        assert_eq!(p.global.api_url.as_deref(), Some("http://x"));
        assert_eq!(p.command.as_deref(), Some("deny"));
        assert_eq!(p.positionals, ["ID"]);
        assert_eq!(p.all("reason"), ["a", "b"]);
        assert!(parse_line("export --no-wait").unwrap().switch("no-wait"));
    }

    #[test]
    fn unknown_options_and_missing_values_are_errors() {
        assert_eq!(
            parse_line("deny ID --months 2").unwrap_err(),
            "unknown option --months for `deny`"
        );
        assert_eq!(
            parse_line("deny ID --reason").unwrap_err(),
            "--reason needs a value"
        );
        assert!(parse_line("export --no-wait=yes").is_err());
        assert!(parse_line("--reason x deny").is_err());
    }
}
