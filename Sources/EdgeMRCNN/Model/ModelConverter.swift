// `edge-mrcnn convert` and `edge-mrcnn info` as library calls. OWNER: io helper.

public enum ModelConverter {
    /// Reads a .pth (or a model file) and writes the folded float model as safetensors at `output`
    /// (written to a temporary name, then renamed). `progress` gets one-line messages.
    public static func convert(input: String, output: String, overrides: ModelOverrides,
                               progress: (String) -> Void = { _ in }) throws {
        let kind: ModelFileKind
        do {
            let f = try MappedFile(path: input)
            kind = try ModelLoader.sniff(f.span)
        }
        progress("reading \(input) (\(kind.rawValue))")
        let (store, config) = try ModelLoader.load(path: input, overrides: overrides, notice: progress)
        let names = try ModelSpec.tensors(config).map { $0.name }
        if kind == .safetensors {
            // The folded checkpoint path checks finiteness; do it here too for a re-written model file.
            for n in names {
                guard let t = store.tensor(n) else { continue }
                let p = UnsafeBufferPointer(start: t.floats, count: t.count)
                if let bad = p.firstIndex(where: { !$0.isFinite }) {
                    throw EdgeError(file: input, "tensor '\(n)' has a non-finite value (\(p[bad])) at element \(bad)")
                }
            }
        }
        progress("folded model: \(config.architecture.rawValue), \(names.count) tensors, \(config.numClasses) classes, min_size \(config.minSize), max_size \(config.maxSize)")
        try SafeTensorsWriter.write(store, names: names, metadata: config.metadata(), to: output)
        let size = (try? MappedFile(path: output).count) ?? 0
        progress("wrote \(output) (\(formatBytes(size)))")
    }

    /// A human-readable multi-line description of a model file: format, metadata, classes, sizes,
    /// tensor count, parameter count, precision.
    public static func describe(path: String) throws -> String {
        let file = try MappedFile(path: path)
        let kind = try ModelLoader.sniff(file.span)
        var lines: [String] = []
        lines.append("file: \(path)")
        lines.append("file size: \(formatBytes(file.count))")
        func params(_ s: TensorStore) -> (Int, Int) {
            var n = 0, tensors = 0
            for name in s.names { if let t = s.tensor(name) { n += t.count; tensors += 1 } }
            return (tensors, n)
        }
        switch kind {
        case .torchZip, .torchLegacy:
            let sd = try TorchCheckpoint.load(file: file)
            let (tc, pc) = params(sd)
            lines.append("format: \(kind.rawValue), not converted (BatchNorm is folded at load)")
            lines.append("state dict tensors: \(tc)")
            lines.append("state dict values: \(pc)")
            let hasNBT = sd.names.contains { $0.hasSuffix(".num_batches_tracked") }
            lines.append("batch norm: " + (hasNBT ? "BatchNorm2d (num_batches_tracked present)" : "FrozenBatchNorm2d"))
            let arch = try? Fold.architecture(sd, source: path)
            lines.append("architecture: " + (arch.map { "\($0.rawValue) (torchvision \($0.builder))" } ?? "not recognised"))
            if let k = try? Fold.numClasses(sd, source: path), let arch {
                let (c, known) = ModelLoader.checkpointConfig(numClasses: k, architecture: arch, known: ModelLoader.known(file))
                lines.append("known checkpoint: \(known?.name ?? "no (torchvision defaults apply)")")
                lines.append("classes: \(k) (\(c.classNames.joined(separator: ", ")))")
                lines.append("transform: min_size \(c.minSize), max_size \(c.maxSize) unless overridden")
                if let net = try? Network.build(arch, numClasses: k) {
                    lines.append("folded tensors: \(net.tensors.count)")
                } else {
                    lines.append("folded tensors: not supported by this build")
                }
            }
        case .safetensors:
            let store = try MappedTensorStore(path: path)
            let (tc, pc) = params(store)
            let m = store.metadata
            if m["format"] == ModelConfig.formatName {
                lines.append("format: edge-mrcnn model (safetensors), format version \(m["format_version"] ?? "?")")
            } else {
                lines.append("format: safetensors without edge-mrcnn metadata (not a converted model)")
            }
            let arch = m["arch"].flatMap { Architecture(rawValue: $0) }
            lines.append("architecture: " + (arch.map { "\($0.rawValue) (torchvision \($0.builder))" } ?? (m["arch"] ?? "?")))
            lines.append("precision: \(m["precision"] ?? "?")")
            if let config = try? ModelConfig(metadata: m, source: path) {
                lines.append("classes: \(config.numClasses) (\(config.classNames.joined(separator: ", ")))")
                lines.append("min_size: \(config.minSize)")
                lines.append("max_size: \(config.maxSize)")
                lines.append("image_mean: \(config.imageMean.map { "\($0)" }.joined(separator: ","))")
                lines.append("image_std: \(config.imageStd.map { "\($0)" }.joined(separator: ","))")
            } else {
                lines.append("config: missing or invalid edge-mrcnn metadata")
            }
            if QuantizedModel.isInt8(store) {
                lines.append("quantisation: \(m["quant_scheme"] ?? "?")")
                lines.append("calibration: \(m["calibration_method"] ?? "?") on \(m["calibration_images"] ?? "?") images"
                    + (m["calibration_method"] == "percentile" ? " (percentile \(m["calibration_percentile"] ?? "?"))" : "")
                    + (m["calibration_choice"].map { " (\($0))" } ?? "")
                    + ", images sha256 \(m["calibration_images_sha256"] ?? "?")")
                let fl = QuantizedModel.floatLayers(m)
                let all = ((try? ModelConfig(metadata: m, source: path)).flatMap { try? Network.build($0) })?.weightLayers.count ?? 0
                let qn = all - fl.count
                lines.append("int8 layers: \(qn) of \(all) (RoIAlign samples the uint8 maps in float arithmetic; box decoding, NMS, softmax, sigmoid and mask paste run in float)")
                if let fo = m["float_outputs"] { lines.append("float outputs: \(fo)") }
                lines.append("float layers: " + (fl.isEmpty ? "none" : fl.map { "\($0.name) (\($0.reason))" }.joined(separator: ", ")))
            }
            lines.append("tensors: \(tc)")
            lines.append("parameters: \(pc)")
            if let config = try? ModelConfig(metadata: m, source: path), let net = try? Network.build(config) {
                // each layer of the network description with the precision this file gives it
                let int8 = QuantizedModel.isInt8(store)
                let kept = Set(QuantizedModel.floatLayers(m).map { $0.name })
                let width = net.layers.map { $0.name.count }.max() ?? 0
                lines.append("layers (\(net.name)):")
                for l in net.layers {
                    let p = l.op.hasWeights ? (int8 && !kept.contains(l.name) ? "int8" : "float32")
                        : (int8 ? "follows its input" : "float32")
                    lines.append("  " + l.name + String(repeating: " ", count: width - l.name.count + 2)
                        + p + String(repeating: " ", count: 19 - p.count) + l.summary)
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    static func formatBytes(_ n: Int) -> String {
        if n >= 1 << 20 {
            let tenths = (n * 10 + (1 << 19)) >> 20
            return "\(n) bytes (\(tenths / 10).\(tenths % 10) MiB)"
        }
        return "\(n) bytes"
    }
}
