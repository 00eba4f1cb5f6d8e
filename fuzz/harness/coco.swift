// libFuzzer harness: the JSON reader and the COCO annotations / results readers. A JSON object
// is read as annotations (then every segmentation of a small image is rasterised), a list as
// results against a fixed small ground truth; the image-id index reader runs on every input.
@testable import EdgeMRCNN

let fuzzGT: COCODataset = {
    let text = """
    {"images":[{"id":1,"file_name":"a.jpg","height":24,"width":32},{"id":2,"file_name":"d/b.jpg","height":8,"width":8}],
     "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[1,2,10,12],"area":120,"iscrowd":0,
                     "segmentation":[[1,2,11,2,11,14,1,14]]}],
     "categories":[{"id":1,"name":"circle"},{"id":2,"name":"square"}]}
    """
    return try! COCODataset.parse(try! JSON.parse(text), source: "gt.json")
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCOCO(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? COCOImageIndex.parse(Array(raw))
    let json: JSON
    do { json = try JSON.parse(raw) } catch is EdgeError { return 0 } catch { fatalError("\(error)") }
    // The serializer must give text the parser reads back to the same value.
    let text = json.serialized()
    guard let again = try? JSON.parse(text), again == json || text.contains("null") else { fatalError("JSON round trip") }
    do {
        if json.arrayValue != nil {
            let rs = try COCOResults.parse(json, gt: fuzzGT, source: "fuzz.json")
            _ = try COCOEval.evaluate(gt: fuzzGT, results: rs, iouType: .segm, imageIds: nil)
        } else {
            let ds = try COCODataset.parse(json, source: "fuzz.json")
            for a in ds.annotations {
                guard let im = ds.image(id: a.imageId) else { fatalError("annotation without image") }
                if let s = a.segmentation, im.height * im.width <= 1 << 16 {
                    if let r = try? s.toRLE(height: im.height, width: im.width) { _ = r.area; _ = r.bbox }
                }
            }
        }
    } catch is EdgeError {
        return 0
    } catch {
        fatalError("non-EdgeError thrown: \(error)")
    }
    return 0
}
