// HEALPix in the RING scheme, as the scans store their pixels (skyscan/sky/pixels.py: theta = pi/2 - dec,
// phi = RA). A port of ang2pix from the HEALPix C++ library (healpix_base.cc, loc2pix); the browser
// tests check it against healpy.

const HALF_PI = Math.PI / 2;
const TWO_THIRDS = 2 / 3;

// The RING index at `nside` of the pixel holding the direction with z = sin(dec) and phi = RA (radians).
export function ang2pixRing(nside, z, phi) {
  const za = Math.abs(z);
  let tt = (phi / HALF_PI) % 4;
  if (tt < 0) tt += 4;
  if (za <= TWO_THIRDS) {
    // equatorial belt: the pixel's ring and position from its two edge lines
    const nl4 = 4 * nside;
    const temp1 = nside * (0.5 + tt);
    const temp2 = nside * z * 0.75;
    const jp = Math.floor(temp1 - temp2); // ascending edge line
    const jm = Math.floor(temp1 + temp2); // descending edge line
    const ir = nside + 1 + jp - jm; // ring counted from z = 2/3, in 1..2 nside + 1
    const kshift = 1 - (ir & 1);
    const ip = Math.floor((jp + jm - nside + kshift + 1 + 2 * nl4) / 2) % nl4;
    return 2 * nside * (nside - 1) + (ir - 1) * nl4 + ip;
  }
  // polar caps
  const tp = tt - Math.floor(tt);
  const tmp = nside * Math.sqrt(3 * (1 - za));
  const jp = Math.floor(tp * tmp);
  const jm = Math.floor((1 - tp) * tmp);
  const ir = jp + jm + 1; // ring counted from the nearer pole
  const ip = Math.min(Math.floor(tt * ir), 4 * ir - 1);
  return z > 0 ? 2 * ir * (ir - 1) + ip : 12 * nside * nside - 2 * ir * (ir + 1) + ip;
}

// Approximate side of a pixel at `nside`, in degrees (the square root of its area).
export function pixelSizeDeg(nside) {
  return (Math.sqrt((4 * Math.PI) / (12 * nside * nside)) * 180) / Math.PI;
}
