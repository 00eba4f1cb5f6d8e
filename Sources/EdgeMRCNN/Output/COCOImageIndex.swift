// The file_name -> id map of a COCO annotations file ("images": [{"id":..,"file_name":..}, ...]),
// read with the project's JSON reader (Core/JSON.swift). Names are indexed as written and by their
// base name, so "val2017/x.jpg" style names match plain file names.

public enum COCOImageIndex {
    public static func load(path: String) throws -> [String: Int] {
        do {
            return try index(JSON.load(path: path))
        } catch let e as EdgeError where !e.message.hasPrefix(path + ":") {
            throw EdgeError(file: path, e.message)
        }
    }

    /// Parses the bytes of an annotations file.
    public static func parse(_ bytes: [UInt8]) throws -> [String: Int] {
        try index(bytes.withUnsafeBytes { try JSON.parse($0) })
    }

    private static func index(_ root: JSON) throws -> [String: Int] {
        guard root.objectValue != nil else { throw EdgeError("the file is not a JSON object") }
        guard let images = root["images"] else {
            throw EdgeError("no \"images\" list (not a COCO annotations file)")
        }
        guard let list = images.arrayValue else { throw EdgeError("\"images\" is not a list") }
        var map: [String: Int] = [:]
        for (index, image) in list.enumerated() {
            guard image.objectValue != nil else { throw EdgeError("images[\(index)] is not an object") }
            guard let id = image["id"]?.intValue, let name = image["file_name"]?.stringValue else {
                throw EdgeError("images[\(index)] lacks an integer \"id\" or a \"file_name\"")
            }
            map[name] = id
            let base = OutputPaths.baseName(name)
            if base != name && map[base] == nil { map[base] = id }
        }
        return map
    }
}
