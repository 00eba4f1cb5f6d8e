// A torchvision state dict with seeded weights, made in memory: what tools/make_arch_fixtures.py
// saves with `torch.save(model.state_dict())` after filling torchvision's builder with the same
// values, so tests can read it through the same Fold path a .pth takes and compare with the
// fixtures that script recorded from torchvision (Tests/Fixtures/arch). No .pth is committed
// (a ResNet-50-FPN holds 40+ M parameters); both sides regenerate it from the seed.
//
// Every tensor is drawn by its torchvision key (seed: SyntheticModel.tensorSeed(seed, key)) with
// the generator of SyntheticModel (splitmix64 + polar normal, no libm; em_seeded_fill in C):
//   conv / linear weights and biases   torchvision's initialisation (the layer's WeightInit),
//                                      times the gain below for the predictors
//   BatchNorm (every norm layer)       weight 1 + 0.25 u, bias 0.1 u, running_mean 0.1 u,
//                                      running_var 1 + 0.25 u, u uniform in (-1, 1)
// With BatchNorm perturbed the FPN maps are large (mean |x| ~30), so the class logits already
// spread (std 2.5 v1, 7 v2; the top-20 scores differ by >= 1e-4); the gain doubles the RPN
// objectness logits (std 0.5 -> 1 on v2) so that the 1000-proposal cut-off is not a near-tie.

import CShim

public enum SeededCheckpoint {
    public static let defaultSeed: UInt64 = 20261130

    /// Factor on the initialisation's std / bound, by torchvision key.
    public static let gains: [String: Double] = [
        "rpn.head.cls_logits.weight": 2,
    ]

    /// BatchNorm tensors: (suffix, offset, scale of u).
    static let batchNorm: [(String, Double, Double)] = [
        ("weight", 1, 0.25), ("bias", 0, 0.1), ("running_mean", 0, 0.1), ("running_var", 1, 0.25),
    ]

    /// The unfolded state dict of `arch` with `numClasses` classes (torchvision keys; no
    /// num_batches_tracked, which nothing reads).
    public static func stateDict(_ arch: Architecture, numClasses k: Int, seed: UInt64 = defaultSeed) throws -> OwnedTensorStore {
        let net = try Network.build(arch, numClasses: k)
        let out = OwnedTensorStore(metadata: [:])
        func fill(_ key: String, _ shape: [Int], normal: Bool, offset: Double, scale: Double) {
            var v = [Float](repeating: 0, count: shape.reduce(1, *))
            if scale != 0 || offset != 0 {
                v.withUnsafeMutableBufferPointer {
                    em_seeded_fill(SyntheticModel.tensorSeed(seed, key), normal ? 1 : 0, offset, scale, $0.baseAddress, $0.count)
                }
            }
            out.addFloats(key, shape: shape, v)
        }
        func draw(_ key: String, _ shape: [Int], _ i: SyntheticModel.Init) {
            let g = gains[key] ?? 1
            switch i {
            case .zero: fill(key, shape, normal: false, offset: 0, scale: 0)
            case .normal(let std): fill(key, shape, normal: true, offset: 0, scale: std * g)
            case .uniform(let bound): fill(key, shape, normal: false, offset: 0, scale: bound * g)
            }
        }
        for l in net.weightLayers {
            let src = l.sourcePrefixes[0]
            draw(src + ".weight", l.weightShape, SyntheticModel.initialisation(l, isBias: false, ignoringBatchNorm: true).0)
            if let bn = l.batchNorm {
                for (suffix, offset, scale) in batchNorm {
                    fill(bn + "." + suffix, [l.cout], normal: false, offset: offset, scale: scale)
                }
            } else {
                draw(src + ".bias", [l.cout], SyntheticModel.initialisation(l, isBias: true, ignoringBatchNorm: true).0)
            }
        }
        return out
    }
}
