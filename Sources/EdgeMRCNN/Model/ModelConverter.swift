// `edge-mrcnn convert` and `edge-mrcnn info` as library calls. OWNER: io helper.

public enum ModelConverter {
    /// Reads a .pth (or a model file) and writes the folded float model as safetensors at `output`
    /// (written to a temporary name, then renamed). `progress` gets one-line messages.
    public static func convert(input: String, output: String, overrides: ModelOverrides,
                               progress: (String) -> Void = { _ in }) throws {
        throw EdgeError(file: input, "convert is not built yet")
    }

    /// A human-readable multi-line description of a model file: format, metadata, classes, sizes,
    /// tensor count, parameter count, precision.
    public static func describe(path: String) throws -> String {
        throw EdgeError(file: path, "info is not built yet")
    }
}
