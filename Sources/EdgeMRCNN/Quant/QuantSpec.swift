// Which layers of the network are quantised, which activation feeds each, and which activations
// get uint8 parameters: read off the network description (Model/Network.swift).

/// Sees activations as the float layers produce them (in place: it may modify them).
public protocol ActivationHook: AnyObject {
    func activation(_ name: String, _ values: UnsafeMutablePointer<Float>, _ count: Int)
}

public struct QuantSpec: Sendable {
    public let network: Network

    public init(_ network: Network) {
        self.network = network
        var out: [String] = [], seen = Set<String>()
        func add(_ n: String) { let k = network.paramsKey(n); if seen.insert(k).inserted { out.append(k) } }
        for l in network.layers {
            for i in l.inputs where network.layer(i)?.floatOutput != true { add(i) }
            if !l.floatOutput { add(l.name) }
        }
        activations = out
        layers = network.weightLayers
    }

    /// The qparams key of an activation name (aliases: max pools, the FPN outputs).
    public func key(_ name: String) -> String { network.paramsKey(name) }

    /// Every weight layer, in network order.
    public let layers: [LayerDef]

    /// The qparams key of a weight layer's input activation.
    public func input(_ l: LayerDef) -> String { key(l.inputs[0]) }

    /// Every activation that gets uint8 parameters (keys), in network order: the inputs of the
    /// weight layers and the outputs that are not decoded in float.
    public let activations: [String]
}
