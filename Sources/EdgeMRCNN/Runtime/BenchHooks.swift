// What `edge-mrcnn bench` reads from a model beyond the timings. One place to connect later work.

extension MaskRCNN {
    /// The activation arena of the last planned input shape: (bytes of the plan, sum of all the
    /// buffers it holds). nil until the arena planner exists; when it lands, return its figures
    /// here (e.g. `(arenaStats.planBytes, arenaStats.sumBytes)`) and bench prints them.
    public var arenaSummary: (planBytes: Int, sumBytes: Int)? { nil }
}
