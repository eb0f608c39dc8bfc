/**
 * Corpus documents that libvirt itself refuses although their folder has no `.err` file for them.
 *
 * virt-manager's MANIFEST says all its documents are ones libvirt writes or accepts, but a few of
 * its XML-editing test inputs are never handed to libvirt and break rules libvirt enforces (each was
 * confirmed with `virsh -c test:///default define` of libvirt 9.0). Each entry plays the role of a
 * `.err` file: the libvirt rule that rejects the document and a fragment our error must contain. The parser has no knowledge of these files; the same rules apply to any
 * document.
 */
export interface KnownInvalid {
  /** The libvirt check that refuses the document. */
  libvirt: string;
  /** Text our xml-error message must contain. */
  expect: string;
}

export const KNOWN_INVALID: Record<string, KnownInvalid> = {
  'virt-manager/domain/xmlparse-replace-child-build.0.xml': {
    libvirt: 'virDomainDefParseIDs: no <name> -> VIR_ERR_NO_NAME; domain.rng also requires <name>',
    expect: '<name>',
  },
  'virt-manager/domain/xmlparse-replace-child-parse.0.xml': {
    libvirt: 'virDomainDefParseIDs: no <name> -> VIR_ERR_NO_NAME; domain.rng also requires <name>',
    expect: '<name>',
  },
  'virt-manager/domain/xmlparse-change-devices-bootorder-in.0.xml': {
    libvirt: "virDomainDefCollectBootOrder: \"boot order '10' used for more than one device\" (VIR_ERR_XML_ERROR)",
    expect: "boot order '10' used for more than one device",
  },
  'virt-manager/domain/xmlparse-change-devices-bootorder-out.0.xml': {
    libvirt: "virDomainDefCollectBootOrder: \"boot order '10' used for more than one device\" (VIR_ERR_XML_ERROR)",
    expect: "boot order '10' used for more than one device",
  },
  'virt-manager/domain/xmlparse-change-guest-in.0.xml': {
    libvirt:
      "virCPUDefParseXML: <feature name='foo' policy='bar'/> -> \"Invalid CPU feature policy\"; its topology (4x5x2 = 40 CPUs for <vcpu> 5) also fails qemuValidateDomainDefCpu",
    expect: 'Invalid CPU feature policy',
  },
  'virt-manager/domain/xmlparse-change-redirdev-in.0.xml': {
    libvirt: "virDomainChrSourceDefValidate: <redirdev type='tcp'/> without <source host service> -> \"Missing source host attribute for char device\"",
    expect: 'Missing source host attribute for char device',
  },
  'virt-manager/domain/xmlparse-convert-to-vnc-has-vnc-in.0.xml': {
    libvirt: "virDomainAudioDefParseXML: <audio type='spice'/> -> \"Missing required attribute 'id' in element 'audio'\"",
    expect: "Missing required attribute 'id' in element 'audio'",
  },
  'virt-manager/domain/xmlparse-convert-to-vnc-spice-devices-in.0.xml': {
    libvirt: "virDomainAudioDefParseXML: <audio type='spice'/> -> \"Missing required attribute 'id' in element 'audio'\"",
    expect: "Missing required attribute 'id' in element 'audio'",
  },
};
