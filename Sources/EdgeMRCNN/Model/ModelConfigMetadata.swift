// ModelConfig <-> safetensors `__metadata__` (string -> string).

extension ModelConfig {
    public func metadata() -> [String: String] {
        func floats(_ xs: [Float]) -> String { xs.map { "\($0)" }.joined(separator: ",") }
        return [
            "format": ModelConfig.formatName,
            "format_version": String(ModelConfig.formatVersion),
            "arch": architecture.rawValue,
            "precision": "float32",
            "num_classes": String(numClasses),
            "class_names": JSON.array(classNames.map { JSON.string($0) }).serialized(),
            "min_size": String(minSize),
            "max_size": String(maxSize),
            "image_mean": floats(imageMean),
            "image_std": floats(imageStd),
        ]
    }

    public init(metadata m: [String: String], source: String) throws {
        func need(_ k: String) throws -> String {
            guard let v = m[k] else { throw EdgeError(file: source, "metadata key '\(k)' is missing (not an edge-mrcnn model file?)") }
            return v
        }
        func int(_ k: String) throws -> Int {
            let s = try need(k)
            guard let v = Int(s), v > 0 else { throw EdgeError(file: source, "metadata '\(k)' = '\(s)' is not a positive integer") }
            return v
        }
        func floats(_ k: String) throws -> [Float] {
            let s = try need(k)
            let parts = s.split(separator: ",", omittingEmptySubsequences: false)
            var out: [Float] = []
            for p in parts {
                guard let f = Float(p.trimmingSpaces()), f.isFinite else {
                    throw EdgeError(file: source, "metadata '\(k)' = '\(s)' is not a comma-separated list of numbers")
                }
                out.append(f)
            }
            guard out.count == 3 else { throw EdgeError(file: source, "metadata '\(k)' must have 3 values, has \(out.count)") }
            return out
        }
        let format = try need("format")
        guard format == ModelConfig.formatName else {
            throw EdgeError(file: source, "metadata format is '\(format)', expected '\(ModelConfig.formatName)'")
        }
        let version = try need("format_version")
        guard version == String(ModelConfig.formatVersion) else {
            throw EdgeError(file: source, "format_version \(version) is not supported (this build reads \(ModelConfig.formatVersion))")
        }
        var architecture = Architecture.maskrcnnV1
        if let arch = m["arch"] {
            guard let a = Architecture(rawValue: arch) else {
                throw EdgeError(file: source, "architecture '\(arch)' is not supported (this build reads \(Architecture.namesList))")
            }
            architecture = a
        }
        if let prec = m["precision"], prec != "float32", prec != "int8" {
            throw EdgeError(file: source, "precision '\(prec)' is not supported by this build (expected float32 or int8)")
        }
        let k = try int("num_classes")
        guard k >= 2 && k <= 100_000 else { throw EdgeError(file: source, "metadata num_classes \(k) is out of range (2...100000)") }
        var names: [String]? = nil
        if let cn = m["class_names"] {
            let j: JSON
            do { j = try JSON.parse(cn) } catch let e as EdgeError {
                throw EdgeError(file: source, "metadata 'class_names': \(e.message)")
            }
            guard case .array(let items) = j else { throw EdgeError(file: source, "metadata 'class_names' is not a JSON array") }
            var list: [String] = []
            for it in items {
                guard case .string(let s) = it else { throw EdgeError(file: source, "metadata 'class_names' holds a non-string") }
                list.append(s)
            }
            guard list.count == k else {
                throw EdgeError(file: source, "metadata 'class_names' has \(list.count) names but num_classes is \(k)")
            }
            names = list
        }
        let std = try floats("image_std")
        guard std.allSatisfy({ $0 > 0 }) else {
            throw EdgeError(file: source, "metadata 'image_std' = '\(m["image_std"] ?? "")' must be positive (the image is divided by it)")
        }
        self.init(numClasses: k, classNames: names, minSize: try int("min_size"), maxSize: try int("max_size"),
                  imageMean: try floats("image_mean"), imageStd: std, architecture: architecture)
    }
}

extension Substring {
    public func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " { s = s.dropFirst() }
        while let l = s.last, l == " " { s = s.dropLast() }
        return s
    }
}
