// The one error type of edge-mrcnn. Its message is a single line that names the file (when there
// is one) and what is wrong with it; the CLI prints it as `edge-mrcnn: <message>` and exits 1.

public struct EdgeError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    /// An error about a file: "<path>: <problem>".
    public init(file: String, _ problem: String) { self.message = "\(file): \(problem)" }
    public var description: String { message }
}
