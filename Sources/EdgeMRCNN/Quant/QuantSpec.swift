// Which layers of the network are quantised, which activation feeds each, and which activations
// get uint8 parameters: read off the network description (Model/Network.swift).

/// Sees activations as the float layers produce them (in place: it may modify them).
public protocol ActivationHook: AnyObject {
    func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int)
}

public enum QuantSpec {
    /// The structure is the same for every class count; only shapes depend on it.
    static let network = Network.maskRCNNResNet50FPN(numClasses: 2)

    /// The qparams key of an activation name (aliases: max pools, the FPN outputs).
    public static func key(_ name: String) -> String { network.paramsKey(name) }

    /// Every weight layer, in network order.
    public static let layers: [LayerDef] = network.weightLayers

    /// The qparams key of a weight layer's input activation.
    public static func input(_ l: LayerDef) -> String { key(l.inputs[0]) }

    /// Every activation that gets uint8 parameters (keys), in network order: the inputs of the
    /// weight layers and the outputs that are not decoded in float.
    public static let activations: [String] = {
        var out: [String] = [], seen = Set<String>()
        func add(_ n: String) { let k = key(n); if seen.insert(k).inserted { out.append(k) } }
        for l in network.layers {
            for i in l.inputs where network.layer(i)?.floatOutput != true { add(i) }
            if !l.floatOutput { add(l.name) }
        }
        return out
    }()
}
