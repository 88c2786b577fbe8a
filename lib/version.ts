/** tether's own version: every program reports it (`cnictl --version`, tetherd's health file, BGP's software version). */
export const TETHER_VERSION = '0.1.0';
