// libFuzzer target: PNG and JPEG decoding (libpng / libjpeg through CImageIO's setjmp error
// paths) and the conversions every decoded photo goes through. Any input must give an image
// or a DataError, never a crash, a leak or a read outside the buffers.
import SpadeData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let img = try? decodeImage(bytes, path: "fuzz") else { return 0 }
    let pixels: Int
    switch img.pixels {
    case .u8(let p): pixels = p.count
    case .u16(let p): pixels = p.count
    }
    precondition(pixels == img.width * img.height * img.channels, "sample count does not match the header")
    precondition(img.rgb8().count == img.width * img.height * 3)
    if let values = img.indexValues() { precondition(values.count == img.width * img.height) }
    return 0
}
