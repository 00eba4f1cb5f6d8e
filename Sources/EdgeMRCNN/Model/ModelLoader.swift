// Opens a model file of any supported kind and gives its tensors (canonical names, see
// ModelSpec) and its config. OWNER: io helper (replace the body; keep the signatures).

/// Settings from the command line that override (or, for .pth files, supply) the model config.
public struct ModelOverrides {
    public var minSize: Int?
    public var maxSize: Int?
    /// Comma-separated class names (`--classes`), with or without the background.
    public var classList: String?
    public init(minSize: Int? = nil, maxSize: Int? = nil, classList: String? = nil) {
        self.minSize = minSize; self.maxSize = maxSize; self.classList = classList
    }
}

public enum ModelLoader {
    /// .safetensors (edge-mrcnn format, memory-mapped) or a torchvision .pth checkpoint (zip or
    /// legacy; BN folded in memory). Recognised by content, not by extension.
    public static func load(path: String, overrides: ModelOverrides = ModelOverrides()) throws
        -> (store: TensorStore, config: ModelConfig)
    {
        throw EdgeError(file: path, "model loading is not built yet")
    }
}
