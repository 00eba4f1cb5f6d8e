// Opens a model file of any supported kind and gives its tensors (canonical names, see
// ModelSpec) and its config. OWNER: io helper.

/// Settings from the command line that override (or, for .pth files, supply) the model config.
public struct ModelOverrides {
    public var minSize: Int?
    public var maxSize: Int?
    /// Comma-separated class names (`--classes`), with or without the background.
    public var classList: String?
    /// Look a .pth up in KnownCheckpoints (SHA-256 of the whole file: about 1 s for 176 MB). It is
    /// skipped anyway when min size, max size and classes are all given.
    public var recognizeKnownCheckpoints: Bool
    public init(minSize: Int? = nil, maxSize: Int? = nil, classList: String? = nil, recognizeKnownCheckpoints: Bool = true) {
        self.minSize = minSize; self.maxSize = maxSize; self.classList = classList
        self.recognizeKnownCheckpoints = recognizeKnownCheckpoints
    }

    /// Does anything remain for a known-checkpoint lookup to supply?
    var needsKnownCheckpoint: Bool {
        recognizeKnownCheckpoints && (minSize == nil || maxSize == nil || classList == nil)
    }

    /// Applies the overrides to `config`.
    public func apply(to config: inout ModelConfig, source: String) throws {
        if let m = minSize {
            guard m > 0 else { throw EdgeError(file: source, "min size \(m) must be positive") }
            config.minSize = m
        }
        if let m = maxSize {
            guard m > 0 else { throw EdgeError(file: source, "max size \(m) must be positive") }
            config.maxSize = m
        }
        if let list = classList {
            config.classNames = try ModelConfig.classNames(fromList: list, numClasses: config.numClasses)
        }
    }
}

public enum ModelFileKind: String {
    case torchZip = "torch zip checkpoint (.pth)"
    case torchLegacy = "legacy torch checkpoint (.pth, pre-1.6)"
    case safetensors = "safetensors"
}

public enum ModelLoader {
    /// What kind of model file `span` is, by content.
    public static func sniff(_ span: ByteSpan) throws -> ModelFileKind {
        if TorchCheckpoint.isZip(span) { return .torchZip }
        if TorchCheckpoint.isLegacy(span) { return .torchLegacy }
        if span.count >= 9 {
            // safetensors: u64 header length, then JSON ('{', possibly after spaces).
            var i = 8
            while i < span.count && i < 64 && span.raw[i] == 0x20 { i += 1 }
            if i < span.count && span.raw[i] == 0x7B { return .safetensors }
        }
        throw EdgeError(file: span.source, "not a model file (expected a torch .pth checkpoint or an edge-mrcnn .safetensors file)")
    }

    /// Loads a .pth checkpoint and folds it: (folded tensors, config with defaults + overrides).
    /// A checkpoint listed in KnownCheckpoints (by SHA-256) starts from its recorded sizes and
    /// class names instead of torchvision's defaults; `notice` is told which one it was. The file is
    /// hashed (about 1 s for 176 MB) only when a known checkpoint could still change the config.
    public static func loadCheckpoint(path: String, overrides: ModelOverrides,
                                      notice: (String) -> Void = { _ in }) throws
        -> (store: OwnedTensorStore, config: ModelConfig)
    {
        let file = try MappedFile(path: path)
        let sd = try TorchCheckpoint.load(file: file)
        let k = try Fold.numClasses(sd, source: path)
        let arch = try Fold.architecture(sd, source: path)
        let lookup = overrides.needsKnownCheckpoint && knownCheckpointCouldApply(numClasses: k, architecture: arch)
        var (config, card) = checkpointConfig(numClasses: k, architecture: arch, known: lookup ? known(file) : nil)
        if lookup { file.dropAllPages() }
        if arch != .maskrcnnV1 { notice("architecture: \(arch.rawValue) (torchvision \(arch.builder), from the state dict's keys)") }   // hashing read every page; folding reads them again one by one
        if let card {
            notice("recognised checkpoint: \(card.name); min_size \(card.minSize), max_size \(card.maxSize), "
                + "\(k - 1) classes (flags override)")
        }
        try overrides.apply(to: &config, source: path)
        // each source tensor's pages are let go once folded, so the file and the folded copy are
        // not both resident (peak RSS of loading ~ one copy instead of two)
        let store = try Fold.fold(sd, source: path, metadata: config.metadata()) { file.dropPages($0, count: $1) }
        return (store, config)
    }

    /// The known checkpoint (KnownCheckpoints, by SHA-256) that `file` is, if any.
    public static func known(_ file: MappedFile) -> KnownCheckpoint? {
        KnownCheckpoints.match(sha256: KnownCheckpoints.sha256(file.bytes))
    }

    /// Is there a known checkpoint of this architecture with `k` classes whose config differs from
    /// the defaults? (The COCO cards equal the defaults for 91 classes, so COCO checkpoints need no hashing.)
    public static func knownCheckpointCouldApply(numClasses k: Int, architecture: Architecture = .maskrcnnV1) -> Bool {
        let d = ModelConfig(numClasses: k, architecture: architecture)
        return KnownCheckpoints.all.contains {
            $0.architecture == architecture && $0.classNames.count == k && ($0.minSize != d.minSize || $0.maxSize != d.maxSize || $0.classNames != d.classNames)
        }
    }

    /// The config of a .pth checkpoint before overrides: a known checkpoint's sizes and class names
    /// when its architecture and class count agree, torchvision's defaults otherwise (800/1333;
    /// COCO names for 91 classes, `person` for a 2-class Keypoint R-CNN).
    public static func checkpointConfig(numClasses k: Int, architecture: Architecture = .maskrcnnV1,
                                        known: KnownCheckpoint?) -> (config: ModelConfig, known: KnownCheckpoint?) {
        if let c = known, c.classNames.count == k, c.architecture == architecture {
            return (ModelConfig(numClasses: k, classNames: c.classNames, minSize: c.minSize, maxSize: c.maxSize,
                                architecture: architecture), c)
        }
        return (ModelConfig(numClasses: k, architecture: architecture), nil)
    }

    /// .safetensors (edge-mrcnn format, memory-mapped) or a torchvision .pth checkpoint (zip or
    /// legacy; BN folded in memory). Recognised by content, not by extension.
    public static func load(path: String, overrides: ModelOverrides = ModelOverrides(),
                            notice: (String) -> Void = { _ in }) throws
        -> (store: TensorStore, config: ModelConfig)
    {
        let kind: ModelFileKind
        do {
            let f = try MappedFile(path: path)
            kind = try sniff(f.span)
        }
        switch kind {
        case .torchZip, .torchLegacy:
            let (s, c) = try loadCheckpoint(path: path, overrides: overrides, notice: notice)
            return (s, c)
        case .safetensors:
            let store = try MappedTensorStore(path: path)
            var config = try ModelConfig(metadata: store.metadata, source: path)
            try overrides.apply(to: &config, source: path)
            try validate(store, config: config, source: path)
            return (store, config)
        }
    }

    /// Every ModelSpec tensor is present, F32 and of the right shape.
    public static func validate(_ store: TensorStore, config: ModelConfig, source: String) throws {
        if QuantizedModel.isInt8(store) {
            try QuantizedModel.validate(store, config: config, source: source)
            return
        }
        for (name, shape) in try ModelSpec.tensors(config) {
            _ = try store.floatTensor(name, shape: shape, source: source)
        }
    }
}
