// What `edge-mrcnn bench` reads from a model beyond the timings.

extension MaskRCNN {
    /// The activation arena of the last planned input shape: (bytes of the plan, sum of all the
    /// buffers it holds); nil before the first detect.
    public var arenaSummary: (planBytes: Int, sumBytes: Int)? {
        let s = arenaStats
        return s.plans > 0 ? (s.planBytes, s.sumBytes) : nil
    }
}
