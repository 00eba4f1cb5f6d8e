// A small command-line parser (swift-argument-parser does not build for the static aarch64 target).
// Flags take values as `--x V` or `--x=V`; boolean flags take none; `-o` style short aliases map
// to long names; `--` ends the flags; everything else is a positional argument, in order.

/// A mistake in how the command was called: printed with the usage line, exit code 2.
struct UsageError: Error, Equatable {
    let message: String
    init(_ message: String) { self.message = message }
}

struct ArgSpec {
    /// Long names (without "--") of flags that take a value.
    var valueFlags: Set<String>
    /// Long names of flags that take no value.
    var boolFlags: Set<String>
    /// Short names (without "-") -> long names.
    var aliases: [String: String]
    /// Long names of flags whose value is optional: `--f=V`, `--f V` (V not starting with '-'), or `--f`.
    var optionalValueFlags: Set<String> = []

    init(values: [String] = [], bools: [String] = [], optionalValues: [String] = [], aliases: [String: String] = [:]) {
        valueFlags = Set(values); boolFlags = Set(bools); optionalValueFlags = Set(optionalValues); self.aliases = aliases
    }
}

struct ParsedArgs {
    /// Every value given for each flag, in order (the last one counts for single-valued flags).
    var values: [String: [String]] = [:]
    var bools: Set<String> = []
    var positionals: [String] = []

    func has(_ name: String) -> Bool { bools.contains(name) || values[name] != nil }

    func string(_ name: String) -> String? { values[name]?.last }

    func requiredString(_ name: String) throws -> String {
        guard let v = string(name) else { throw UsageError("--\(name) is required") }
        return v
    }

    /// An integer value in `range`; nil when the flag is absent.
    func int(_ name: String, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s.trimmingSpaces) else {
            throw UsageError("--\(name) expects an integer, got '\(s)'")
        }
        guard range.contains(v) else {
            if range.upperBound == Int.max {
                throw UsageError("--\(name) must be at least \(range.lowerBound), got \(v)")
            }
            throw UsageError("--\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(v)")
        }
        return v
    }

    /// A finite number in `range`; nil when the flag is absent.
    func float(_ name: String, in range: ClosedRange<Float> = -Float.greatestFiniteMagnitude...Float.greatestFiniteMagnitude) throws -> Float? {
        guard let s = string(name) else { return nil }
        guard let v = Float(s.trimmingSpaces), v.isFinite else {
            throw UsageError("--\(name) expects a number, got '\(s)'")
        }
        guard range.contains(v) else {
            throw UsageError("--\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(s)")
        }
        return v
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}

func parseArgs(_ args: [String], spec: ArgSpec) throws -> ParsedArgs {
    var out = ParsedArgs()
    var i = 0
    var onlyPositionals = false
    while i < args.count {
        let a = args[i]
        i += 1
        if onlyPositionals || a == "-" || !a.hasPrefix("-") {
            out.positionals.append(a)
            continue
        }
        if a == "--" { onlyPositionals = true; continue }
        var name: String
        var inline: String? = nil
        if a.hasPrefix("--") {
            let body = a.dropFirst(2)
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                inline = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
        } else {
            // Short flag: "-o", "-o=V" or "-oV" is not supported; "-o V" and "-o=V" are.
            let body = a.dropFirst()
            var short = String(body)
            if let eq = body.firstIndex(of: "=") {
                short = String(body[..<eq])
                inline = String(body[body.index(after: eq)...])
            }
            guard let long = spec.aliases[short] else {
                // Negative numbers are never positionals here; report the flag.
                throw UsageError("unknown option '\(a)'")
            }
            name = long
        }
        if spec.valueFlags.contains(name) {
            let value: String
            if let v = inline {
                value = v
            } else {
                guard i < args.count else { throw UsageError("option '\(a)' needs a value") }
                value = args[i]
                i += 1
            }
            out.values[name, default: []].append(value)
        } else if spec.optionalValueFlags.contains(name) {
            var value = inline ?? ""
            if inline == nil, i < args.count, !args[i].hasPrefix("-") { value = args[i]; i += 1 }
            out.values[name, default: []].append(value)
        } else if spec.boolFlags.contains(name) {
            if inline != nil { throw UsageError("option '--\(name)' takes no value") }
            out.bools.insert(name)
        } else {
            throw UsageError("unknown option '\(a.hasPrefix("--") ? "--" + name : a)'")
        }
    }
    return out
}
