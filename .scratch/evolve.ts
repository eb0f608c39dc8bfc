      return {
        ...base,
        hostLost: true,
        lastObserved: s.hostLost ? s.lastObserved : s.observed,
        observed: { state: 'nostate', reason: 'unknown' },
        desired: e.data.desired ?? s.desired,
        ...(e.data.leaseRevision !== undefined ? { hostLostRevision: e.data.leaseRevision } : {}),
      };
    case 'DomainEvacuationStarted':
      return { ...base, evacuating: { fromHostId: e.data.fromHostId, ...(e.data.start ? { start: e.data.start } : {}) } };
    case 'DomainFailedOver':
    case 'DomainEvacuated': {
      // The old host's guest is fenced or stopped: nothing runs until the new host starts it.
      const { evacuating: _done, ...rest } = base;
      return {
        ...rest,
        hostId: e.data.hostId,
        placementEpoch: e.data.placementEpoch,
        hostLost: false,
        observed: { state: 'shutoff', reason: 'unknown' },
        interfaces: [],
      };
    }
