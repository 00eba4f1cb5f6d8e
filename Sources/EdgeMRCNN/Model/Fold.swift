// torchvision state dict -> the folded float model of the network description (Model/Network.swift): BatchNorm (nn.BatchNorm2d or
// FrozenBatchNorm2d) folded into the preceding conv, old key names renamed, every tensor checked.

public enum Fold {
    public static let bnEps: Double = 1e-5

    /// num_classes from roi_heads.box_predictor.cls_score.weight.
    public static func numClasses(_ sd: TensorStore, source: String) throws -> Int {
        let n = Network.classScoreWeight
        guard let t = lookup(sd, n) else { throw EdgeError(file: source, "missing tensor '\(n)'") }
        guard t.shape.count == 2, t.shape[0] >= 2 else {
            throw EdgeError(file: source, "tensor '\(n)' has shape \(t.shape), expected [num_classes, 1024]")
        }
        return t.shape[0]
    }

    /// The architecture of a torchvision state dict, from its keys (Architecture.recognise).
    public static func architecture(_ sd: TensorStore, source: String) throws -> Architecture {
        do { return try Architecture.recognise { sd.tensor($0) != nil } } catch let e as EdgeError {
            throw EdgeError(file: source, e.message)
        }
    }

    /// A tensor of the state dict, accepting a DataParallel "module." prefix.
    static func lookup(_ sd: TensorStore, _ name: String) -> TensorView? {
        sd.tensor(name) ?? sd.tensor("module." + name)
    }

    /// Where a folded tensor comes from.
    enum Source {
        case copy([String])                 // first existing candidate name
        case convBN(conv: String, bn: String) // conv weight (no bias) + BN prefix
    }

    /// Where folded tensor `name` of `net` comes from (the layer's source prefixes and BatchNorm).
    static func origin(for name: String, in net: Network) -> (Source, isBias: Bool) {
        let isBias = name.hasSuffix(".bias")
        let prefix = String(name.dropLast(isBias ? 5 : 7))
        let leaf = isBias ? "bias" : "weight"
        guard let l = net.layer(prefix) else { return (.copy([name]), isBias) }
        if let bn = l.batchNorm { return (.convBN(conv: l.sourcePrefixes[0] + ".weight", bn: bn), isBias) }
        return (.copy(l.sourcePrefixes.map { $0 + "." + leaf }), isBias)
    }

    /// Folds a torchvision R-CNN state dict into the tensors of its architecture's network (all
    /// F32; the architecture recognised from the keys).
    /// consumed: told about each source tensor's bytes once they have been read for the last
    /// time (the loader lets the file's pages go).
    public static func fold(_ sd: TensorStore, source: String, metadata: [String: String] = [:],
                            consumed: ((UnsafeRawPointer, Int) -> Void)? = nil) throws -> OwnedTensorStore {
        let k = try numClasses(sd, source: source)
        let arch = try architecture(sd, source: source)
        let net: Network
        do { net = try Network.build(arch, numClasses: k) } catch let e as EdgeError { throw EdgeError(file: source, e.message) }
        let out = OwnedTensorStore(metadata: metadata)
        var scratch: [Float] = []

        func get(_ name: String, _ shape: [Int]?) throws -> TensorView {
            guard let t = lookup(sd, name) else { throw EdgeError(file: source, "missing tensor '\(name)'") }
            guard t.dtype == .f32 else { throw EdgeError(file: source, "tensor '\(name)' has dtype \(t.dtype.rawValue), expected a float type") }
            if let shape, t.shape != shape {
                throw EdgeError(file: source, "tensor '\(name)' has shape \(t.shape), expected \(shape)")
            }
            return t
        }
        func checkFinite(_ name: String, _ p: UnsafeBufferPointer<Float>) throws {
            // Integer max of the exponent bits (vectorisable): all ones means Inf or NaN.
            var m: UInt32 = 0
            UnsafeRawBufferPointer(p).withMemoryRebound(to: UInt32.self) { bits in
                for b in bits { m = max(m, b & 0x7F80_0000) }
            }
            if m == 0x7F80_0000 {
                let bad = p.firstIndex { !$0.isFinite } ?? 0
                throw EdgeError(file: source, "tensor '\(name)' has a non-finite value (\(p[bad])) at element \(bad)")
            }
        }

        for (name, shape) in net.tensors {
            let (src, isBias) = origin(for: name, in: net)
            switch src {
            case .copy(let candidates):
                let found = candidates.first { lookup(sd, $0) != nil } ?? candidates[0]
                let t = try get(found, shape)
                let buf = UnsafeBufferPointer(start: t.floats, count: t.count)
                try checkFinite(found, buf)
                out.add(name, dtype: .f32, shape: shape, bytes: UnsafeRawBufferPointer(buf))
                consumed?(t.data, t.byteCount)
            case .convBN(let convName, let bn):
                let cout = shape[0]
                let w = try get(convName, isBias ? nil : shape)
                guard w.shape.count == 4, w.shape[0] == cout else {
                    throw EdgeError(file: source, "tensor '\(convName)' has shape \(w.shape), expected [\(cout), …]")
                }
                // torchvision's backbone convs have no bias; accept one anyway: b' = beta + (cb - rm) * s.
                let convBias = try lookup(sd, String(convName.dropLast(6)) + "bias").map { _ in
                    try get(String(convName.dropLast(6)) + "bias", [cout])
                }
                let g = try get(bn + ".weight", [cout]), b = try get(bn + ".bias", [cout])
                let rm = try get(bn + ".running_mean", [cout]), rv = try get(bn + ".running_var", [cout])
                for (n, t) in [(bn + ".weight", g), (bn + ".bias", b), (bn + ".running_mean", rm), (bn + ".running_var", rv)] {
                    try checkFinite(n, UnsafeBufferPointer(start: t.floats, count: t.count))
                }
                var scale = [Float](repeating: 0, count: cout)
                for c in 0..<cout {
                    let v = Double(rv.floats[c]) + bnEps
                    guard v > 0 else { throw EdgeError(file: source, "tensor '\(bn).running_var' has a negative value at element \(c)") }
                    scale[c] = Float(Double(g.floats[c]) / v.squareRoot())
                }
                if isBias {
                    scratch = [Float](repeating: 0, count: cout)
                    for c in 0..<cout {
                        let cb = convBias.map { $0.floats[c] } ?? 0
                        scratch[c] = b.floats[c] + (cb - rm.floats[c]) * scale[c]
                    }
                    scratch.withUnsafeBytes { out.add(name, dtype: .f32, shape: shape, bytes: $0) }
                } else {
                    let per = w.count / cout
                    try checkFinite(convName, UnsafeBufferPointer(start: w.floats, count: w.count))
                    scratch = [Float](repeating: 0, count: w.count)
                    scratch.withUnsafeMutableBufferPointer { o in
                        let wi = w.floats
                        for c in 0..<cout {
                            let s = scale[c]
                            let base = c * per
                            for j in base..<(base + per) { o[j] = wi[j] * s }
                        }
                    }
                    scratch.withUnsafeBytes { out.add(name, dtype: .f32, shape: shape, bytes: $0) }
                    consumed?(w.data, w.byteCount)
                }
            }
        }
        return out
    }
}
